package main_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// TestUDPRoundTripsOnTwoCPUs: eight apps doing UDP request/response at
// once through tungate with --cpus 2 get every echo, none later than a
// second. With two Ps the session table's poller once lost wake-ups
// (fixed in 3d6af35): every app then waited for its own timeout, and with
// that wait put back this test fails within the first 400 round trips.
func TestUDPRoundTripsOnTwoCPUs(t *testing.T) {
	if kernelMode() {
		t.Skip("tests tungate itself")
	}
	t.Parallel()
	tp := newTopo(t, "--cpus", "2")
	addr := tp.srvPort(false, portUDPEcho1)
	netlab.StartPeer(t, tp.srv, "-udp-echo", addr)
	const clients, rounds = 8, 2000
	conns := make([]net.Conn, clients)
	for i := range conns {
		if err := tp.app.Do(func() (err error) { conns[i], err = net.Dial("udp", addr); return err }); err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close()
	}
	// The echo server may take a moment to listen: the first datagram of
	// each client is retried until it is answered.
	for i, c := range conns {
		if _, err := udpRoundTrip(c, 0, 200*time.Millisecond, 25); err != nil {
			t.Fatalf("client %d: no first echo: %v", i, err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, clients)
	slowest := make([]time.Duration, clients)
	for i, c := range conns {
		wg.Go(func() {
			for seq := uint64(1); seq <= rounds; seq++ {
				took, err := udpRoundTrip(c, seq, time.Second, 1)
				if err != nil {
					errs[i] = err
					return
				}
				slowest[i] = max(slowest[i], took)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
	t.Logf("%d clients x %d round trips; slowest per client %v", clients, rounds, slowest)
}

// udpRoundTrip sends seq on c and waits up to wait for its echo, trying
// up to tries times; it returns the time of the answered try.
func udpRoundTrip(c net.Conn, seq uint64, wait time.Duration, tries int) (time.Duration, error) {
	out := make([]byte, 60)
	in := make([]byte, 128)
	binary.BigEndian.PutUint64(out, seq)
	var err error
	for range tries {
		sent := time.Now()
		if _, err = c.Write(out); err != nil {
			return 0, err
		}
		c.SetReadDeadline(sent.Add(wait))
		for {
			var n int
			if n, err = c.Read(in); err != nil {
				break
			}
			if n == len(out) && binary.BigEndian.Uint64(in) == seq {
				return time.Since(sent), nil
			}
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, err
		}
	}
	return 0, fmt.Errorf("round trip %d: no echo within %v", seq, wait)
}
