package proxy

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/leaktest"
)

// echoRoundTrip writes msg and expects it back.
func echoRoundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo: got %q, want %q", got, msg)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSOCKS5Connect(t *testing.T) {
	echo := startEcho(t)
	tests := []struct {
		name       string
		srv        *fakeSOCKS5
		user, pass string
		target     string
		wantErr    error  // nil: expect an echo
		wantText   string // substring of the error
	}{
		{name: "no auth", target: echo.addr()},
		{name: "domain sent unresolved", target: "echo.example:" + port(echo.addr())},
		{name: "user pass", srv: &fakeSOCKS5{user: "alice", pass: "s3cret"}, user: "alice", pass: "s3cret", target: echo.addr()},
		{name: "bad password", srv: &fakeSOCKS5{user: "alice", pass: "s3cret"}, user: "alice", pass: "wrong",
			target: echo.addr(), wantErr: ErrAuth, wantText: "rejected the username or password"},
		{name: "auth required, none given", srv: &fakeSOCKS5{user: "alice", pass: "s3cret"},
			target: echo.addr(), wantErr: ErrAuth, wantText: "give USER:PASS"},
		{name: "refused", srv: &fakeSOCKS5{reply: 5}, target: "10.1.2.3:80", wantErr: ErrRefused,
			wantText: "connect to 10.1.2.3:80: connection refused"},
		{name: "not allowed", srv: &fakeSOCKS5{reply: 2}, target: echo.addr(), wantErr: ErrNotAllowed},
		{name: "host unreachable", srv: &fakeSOCKS5{reply: 4}, target: echo.addr(), wantErr: ErrUnreachable},
		{name: "unknown reply", srv: &fakeSOCKS5{reply: 0x42}, target: echo.addr(), wantErr: ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSOCKS5(t, cmp.Or(tt.srv, &fakeSOCKS5{}))
			d := &SOCKS5{Address: srv.addr(), Username: tt.user, Password: tt.pass, Forward: &Direct{}}
			conn, err := d.DialContext(testCtx(t), "tcp", tt.target)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				echoRoundTrip(t, conn, "hello through socks5")
				if got := srv.lastTarget(); got != tt.target {
					t.Errorf("proxy was asked for %q, want %q", got, tt.target)
				}
				return
			}
			if err == nil {
				conn.Close()
				t.Fatal("dial succeeded, want an error")
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("error %q: want %v containing %q", err, tt.wantErr, tt.wantText)
			}
			if tt.pass != "" && strings.Contains(err.Error(), tt.pass) {
				t.Fatalf("error %q shows the password", err)
			}
		})
	}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func TestSOCKS5RejectsLongName(t *testing.T) {
	srv := startSOCKS5(t, &fakeSOCKS5{})
	d := &SOCKS5{Address: srv.addr(), Forward: &Direct{}}
	_, err := d.DialContext(testCtx(t), "tcp", strings.Repeat("a", 256)+":80")
	if err == nil || !strings.Contains(err.Error(), "at most 255") {
		t.Fatalf("error %v: want one about the 255-byte limit", err)
	}
}

func TestSOCKS5UDP(t *testing.T) {
	echo := startUDPEcho(t)
	for _, tt := range []struct {
		name string
		srv  *fakeSOCKS5
	}{
		{name: "relay address given", srv: &fakeSOCKS5{}},
		{name: "relay 0.0.0.0 means the proxy's IP", srv: &fakeSOCKS5{relayUnspecified: true}},
		{name: "fragments and strangers dropped", srv: &fakeSOCKS5{junkFirst: true}},
		{name: "with auth", srv: &fakeSOCKS5{user: "u", pass: "p"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSOCKS5(t, cmp.Or(tt.srv, &fakeSOCKS5{}))
			d := &SOCKS5{Address: srv.addr(), Username: tt.srv.user, Password: tt.srv.pass, Forward: &Direct{}}
			conn, err := d.DialPacket(testCtx(t), "udp", echo)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if got := conn.RemoteAddr().String(); got != echo {
				t.Errorf("RemoteAddr %s, want the destination %s", got, echo)
			}
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 2048)
			for _, msg := range []string{"first datagram", "second", strings.Repeat("x", 1400)} {
				if _, err := conn.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				n, err := conn.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				if string(buf[:n]) != msg {
					t.Fatalf("got %q, want %q", buf[:n], msg)
				}
			}
			if tt.srv.junkFirst {
				if got := conn.(*socks5PacketConn).dropped.Load(); got != 6 {
					t.Errorf("dropped %d datagrams, want 6", got)
				}
			}
		})
	}
}

func TestSOCKS5UDPEndsWithControl(t *testing.T) {
	echo := startUDPEcho(t)
	srv := startSOCKS5(t, &fakeSOCKS5{})
	d := &SOCKS5{Address: srv.addr(), Forward: &Direct{}}
	conn, err := d.DialPacket(testCtx(t), "udp", echo)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	srv.closeControls()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Read(make([]byte, 100))
	if !errors.Is(err, ErrUDPAssociationEnded) || errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after the proxy closed the control connection: %v, want ErrUDPAssociationEnded (and not net.ErrClosed, which callers take for their own Close)", err)
	}
	if err := conn.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

func TestSOCKS5UDPCloseEndsControl(t *testing.T) {
	echo := startUDPEcho(t)
	srv := startSOCKS5(t, &fakeSOCKS5{})
	d := &SOCKS5{Address: srv.addr(), Forward: &Direct{}}
	conn, err := d.DialPacket(testCtx(t), "udp", echo)
	if err != nil {
		t.Fatal(err)
	}
	pc := conn.(*socks5PacketConn)
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	select {
	case <-pc.ctrlDone:
	default:
		t.Fatal("control watcher still running after Close")
	}
	if _, err := pc.ctrl.Write([]byte{0}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("control connection still open after Close: %v", err)
	}
}

func TestSOCKS5UDPNeedsFirstHop(t *testing.T) {
	d := &SOCKS5{Address: "127.0.0.1:1", Forward: &HTTPConnect{Address: "127.0.0.1:2", Forward: &Direct{}}}
	_, err := d.DialPacket(testCtx(t), "udp", "127.0.0.1:53")
	if !errors.Is(err, ErrUDPUnsupported) {
		t.Fatalf("error %v, want ErrUDPUnsupported", err)
	}
}

// Dialing and closing associations leaves no goroutine behind, ours or
// (once it sees the close) the fake server's.
func TestSOCKS5UDPNoLeak(t *testing.T) {
	echo := startUDPEcho(t)
	srv := startSOCKS5(t, &fakeSOCKS5{})
	d := &SOCKS5{Address: srv.addr(), Forward: &Direct{}}
	leaks := leaktest.Take()
	for range 20 {
		conn, err := d.DialPacket(testCtx(t), "udp", echo)
		if err != nil {
			t.Fatal(err)
		}
		echoRoundTrip(t, conn, "ping")
		conn.Close()
	}
	leaks.Wait(t, 0)
}
