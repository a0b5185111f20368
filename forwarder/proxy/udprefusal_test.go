package proxy

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// A proxy that answers UDP ASSOCIATE with "command not supported" is asked
// once: the next dials through the chain fail at once with the remembered
// refusal, and TCP through it is unaffected.
func TestChainRemembersUDPRefusal(t *testing.T) {
	echo := startEcho(t)
	srv := startSOCKS5(t, &fakeSOCKS5{refuseUDP: true})
	hop, err := ParseURL("socks5://" + srv.addr())
	if err != nil {
		t.Fatal(err)
	}
	chain := NewChain([]*Hop{hop}, &Direct{}, 0).(*Chain)
	_, err = chain.DialPacket(testCtx(t), "udp", "127.0.0.1:53")
	if !errors.Is(err, ErrUDPRefused) || !errors.Is(err, ErrUDPUnsupported) || errors.Is(err, ErrUDPRefusedRecently) {
		t.Fatalf("first dial: %v, want ErrUDPRefused and ErrUDPUnsupported, not ErrUDPRefusedRecently", err)
	}
	if he, ok := errors.AsType[*HopError](err); !ok || he.Index != 1 {
		t.Fatalf("first dial: %v, want a HopError naming hop 1", err)
	}
	if !strings.Contains(err.Error(), "reply 7") {
		t.Errorf("first dial: %q does not quote the proxy's reply", err)
	}
	for range 5 {
		start := time.Now()
		_, err = chain.DialPacket(testCtx(t), "udp", "127.0.0.1:53")
		if !errors.Is(err, ErrUDPRefused) || !errors.Is(err, ErrUDPRefusedRecently) {
			t.Fatalf("later dial: %v, want ErrUDPRefused and ErrUDPRefusedRecently", err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("remembered refusal took %v", d)
		}
	}
	if n := srv.requests(); n != 1 {
		t.Errorf("the proxy was asked %d times, want once", n)
	}
	conn, err := chain.DialContext(testCtx(t), "tcp", echo.addr())
	if err != nil {
		t.Fatalf("TCP after a UDP refusal: %v", err)
	}
	conn.Close()
}

func TestUDPRefusalPeriod(t *testing.T) {
	var r udpRefusal
	t0 := time.Unix(1000, 0)
	if err := r.check(t0); err != nil {
		t.Fatalf("zero value refuses: %v", err)
	}
	other := errors.New("connection reset")
	if err := r.note(other, t0); err != other || r.check(t0) != nil {
		t.Fatalf("another error was remembered: %v", err)
	}
	fresh := errors.Join(ErrUDPRefused, errCmdNotSupported)
	if err := r.note(fresh, t0); err != fresh {
		t.Fatalf("first refusal: %v, want it unchanged", err)
	}
	// A dial that was asked at the same time is reported as remembered.
	if err := r.note(fresh, t0.Add(time.Second)); !errors.Is(err, ErrUDPRefusedRecently) {
		t.Fatalf("racing refusal: %v, want ErrUDPRefusedRecently", err)
	}
	if err := r.check(t0.Add(UDPRefusalMemory - time.Millisecond)); !errors.Is(err, ErrUDPRefused) || !errors.Is(err, ErrUDPRefusedRecently) {
		t.Fatalf("within the period: %v", err)
	}
	if err := r.check(t0.Add(UDPRefusalMemory)); err != nil {
		t.Fatalf("after the period: %v", err)
	}
}

// Concurrent dials against a refusing proxy: exactly one fresh error.
func TestUDPRefusalOneFreshError(t *testing.T) {
	var r udpRefusal
	now := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := 0
	for range 20 {
		wg.Go(func() {
			err := r.note(ErrUDPRefused, now)
			if !errors.Is(err, ErrUDPRefusedRecently) {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if fresh != 1 {
		t.Fatalf("%d fresh refusals, want 1", fresh)
	}
}
