package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, raw string) *Hop {
	t.Helper()
	hop, err := ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	return hop
}

// A proxy that accepts and never answers must fail within the handshake
// timeout, for every protocol.
func TestHandshakeTimeout(t *testing.T) {
	silent := startSilent(t)
	const timeout = 300 * time.Millisecond
	for _, scheme := range []string{"socks5", "socks4a", "http"} {
		t.Run(scheme, func(t *testing.T) {
			hop := mustParse(t, scheme+"://"+silent.addr())
			d := NewChain([]*Hop{hop}, &Direct{}, timeout)
			start := time.Now()
			conn, err := d.DialContext(testCtx(t), "tcp", "127.0.0.1:80")
			elapsed := time.Since(start)
			if err == nil {
				conn.Close()
				t.Fatal("dial succeeded through a silent proxy")
			}
			if !errors.Is(err, ErrHandshakeTimeout) {
				t.Errorf("error %q: want ErrHandshakeTimeout", err)
			}
			if elapsed < timeout || elapsed > timeout+2*time.Second {
				t.Errorf("failed after %v, want about %v", elapsed, timeout)
			}
			want := "hop 1 " + scheme + "://" + silent.addr() + ": proxy handshake timed out"
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q: want prefix %q", err, want)
			}
		})
	}
	t.Run("udp associate", func(t *testing.T) {
		d := NewChain([]*Hop{mustParse(t, "socks5://"+silent.addr())}, &Direct{}, timeout)
		_, err := d.(PacketDialer).DialPacket(testCtx(t), "udp", "127.0.0.1:53")
		if !errors.Is(err, ErrHandshakeTimeout) {
			t.Errorf("error %q: want ErrHandshakeTimeout", err)
		}
	})
}

func TestHandshakeHonoursCancel(t *testing.T) {
	silent := startSilent(t)
	d := &SOCKS5{Address: silent.addr(), Forward: &Direct{}, HandshakeTimeout: time.Minute}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := d.DialContext(ctx, "tcp", "127.0.0.1:80")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v: want context.Canceled", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Fatalf("cancel took %v to take effect", elapsed)
	}
}

func TestHandshakeHonoursCtxDeadline(t *testing.T) {
	silent := startSilent(t)
	d := &HTTPConnect{Address: silent.addr(), Forward: &Direct{}, HandshakeTimeout: time.Minute}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := d.DialContext(ctx, "tcp", "127.0.0.1:80")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v: want context.DeadlineExceeded", err)
	}
}

func TestChainSOCKS5ThenHTTP(t *testing.T) {
	echo := startEcho(t)
	s5 := startSOCKS5(t, &fakeSOCKS5{user: "alice", pass: "pw"})
	web := startHTTP(t, &fakeHTTP{})
	hops := []*Hop{
		mustParse(t, "direct://"),
		mustParse(t, "socks5://alice:pw@"+s5.addr()),
		mustParse(t, "http://"+web.addr()),
	}
	d := NewChain(hops, &Direct{}, time.Second)
	conn, err := d.DialContext(testCtx(t), "tcp", "echo.example:"+port(echo.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echoRoundTrip(t, conn, "two hops")
	if got := s5.lastTarget(); got != web.addr() {
		t.Errorf("socks5 hop was asked for %q, want the http hop %q", got, web.addr())
	}
	if got, want := fmt.Sprint(d), "socks5://alice@"+s5.addr()+" -> http://"+web.addr(); got != want {
		t.Errorf("chain prints as %q, want %q", got, want)
	}
	if _, err := d.(PacketDialer).DialPacket(testCtx(t), "udp", "127.0.0.1:53"); !errors.Is(err, ErrUDPUnsupported) {
		t.Errorf("UDP through two hops: %v, want ErrUDPUnsupported", err)
	}
}

func TestChainErrorsNameTheHop(t *testing.T) {
	refusing := startSOCKS5(t, &fakeSOCKS5{reply: 5, user: "bob", pass: "hunter2"})
	s5 := startSOCKS5(t, &fakeSOCKS5{})
	closed := startEcho(t)
	closedAddr := closed.addr()
	closed.ln.Close()

	tests := []struct {
		name    string
		hops    []string
		wantErr error
		want    string
	}{
		{name: "second hop refuses", hops: []string{"socks5://" + s5.addr(), "socks5://bob:hunter2@" + refusing.addr()},
			wantErr: ErrRefused,
			want:    "hop 2 socks5://bob@" + refusing.addr() + ": connect to 10.9.9.9:80: connection refused"},
		{name: "first hop down", hops: []string{"http://" + closedAddr, "socks5://" + s5.addr()},
			wantErr: ErrRefused, want: "hop 1 http://" + closedAddr + ": dial tcp"},
		{name: "first hop cannot reach second", hops: []string{"socks5://" + s5.addr(), "socks4://" + closedAddr},
			wantErr: ErrRefused, want: "hop 1 socks5://" + s5.addr() + ": connect to " + closedAddr + ": connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hops []*Hop
			for _, raw := range tt.hops {
				hops = append(hops, mustParse(t, raw))
			}
			_, err := NewChain(hops, &Direct{}, time.Second).DialContext(testCtx(t), "tcp", "10.9.9.9:80")
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q: want %v", err, tt.wantErr)
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %q: want prefix %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows a password", err)
			}
			if _, ok := errors.AsType[*HopError](err); !ok {
				t.Errorf("error %q is not a *HopError", err)
			}
		})
	}
}

func TestChainUDP(t *testing.T) {
	echo := startUDPEcho(t)
	s5 := startSOCKS5(t, &fakeSOCKS5{})
	d := NewChain([]*Hop{mustParse(t, "socks5://"+s5.addr())}, &Direct{}, time.Second)
	if !d.(*Chain).CanCarryUDP() {
		t.Fatal("single socks5 hop says it cannot carry UDP")
	}
	conn, err := d.(PacketDialer).DialPacket(testCtx(t), "udp", echo)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echoRoundTrip(t, conn, "udp through chain")

	for _, raw := range []string{"http://" + s5.addr(), "socks4a://" + s5.addr()} {
		d := NewChain([]*Hop{mustParse(t, raw)}, &Direct{}, time.Second)
		_, err := d.(PacketDialer).DialPacket(testCtx(t), "udp", echo)
		if !errors.Is(err, ErrUDPUnsupported) || !strings.Contains(err.Error(), "TCP only") {
			t.Errorf("%s: error %v, want ErrUDPUnsupported saying TCP only", raw, err)
		}
	}
}

func TestChainDirectOnlyIsBase(t *testing.T) {
	base := &Direct{}
	if d := NewChain([]*Hop{mustParse(t, "direct://")}, base, 0); d != Dialer(base) {
		t.Fatalf("direct-only chain is %T, want the base dialer", d)
	}
}
