package proxy

import (
	"bufio"
	"cmp"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestHTTPConnect(t *testing.T) {
	echo := startEcho(t)
	const basic = "Basic dXNlcjpwQHNz" // user:p@ss
	tests := []struct {
		name       string
		srv        *fakeHTTP
		user, pass string
		target     string
		wantErr    error
		wantText   string
	}{
		{name: "plain", target: echo.addr()},
		{name: "name", target: "echo.example:" + port(echo.addr())},
		{name: "basic auth", srv: &fakeHTTP{auth: basic}, user: "user", pass: "p@ss", target: echo.addr()},
		{name: "407 without credentials", srv: &fakeHTTP{auth: basic}, target: echo.addr(),
			wantErr: ErrAuth, wantText: "give USER:PASS"},
		{name: "407 wrong password", srv: &fakeHTTP{auth: basic}, user: "user", pass: "nope", target: echo.addr(),
			wantErr: ErrAuth, wantText: `"407 Proxy Authentication Required"`},
		{name: "502", srv: &fakeHTTP{status: "502 Bad Gateway"}, target: echo.addr(), wantText: `proxy answered "502 Bad Gateway"`},
		{name: "403", srv: &fakeHTTP{status: "403 Forbidden"}, target: echo.addr(), wantErr: ErrNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startHTTP(t, cmp.Or(tt.srv, &fakeHTTP{}))
			d := &HTTPConnect{Address: srv.addr(), Username: tt.user, Password: tt.pass, Forward: &Direct{}}
			conn, err := d.DialContext(testCtx(t), "tcp", tt.target)
			if tt.wantErr == nil && tt.wantText == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				echoRoundTrip(t, conn, "hello through http")
				srv.mu.Lock()
				defer srv.mu.Unlock()
				if srv.target != tt.target || srv.host != tt.target {
					t.Errorf("proxy saw CONNECT %q Host %q, want %q", srv.target, srv.host, tt.target)
				}
				return
			}
			if err == nil {
				conn.Close()
				t.Fatal("dial succeeded, want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q: want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q: want it to contain %q", err, tt.wantText)
			}
		})
	}
}

// A proxy may send tunnel bytes in the same segment as its headers; they
// must reach the reader before anything read later from the socket.
func TestHTTPConnectEarlyData(t *testing.T) {
	echo := startEcho(t)
	srv := startHTTP(t, &fakeHTTP{earlyData: "EARLY-"})
	d := &HTTPConnect{Address: srv.addr(), Forward: &Direct{}}
	conn, err := d.DialContext(testCtx(t), "tcp", echo.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "echoed"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("EARLY-echoed"))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != "EARLY-echoed" {
		t.Fatalf("got %q, want %q", got, "EARLY-echoed")
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); !ok {
		t.Error("tunnel conn lost CloseWrite")
	} else if err := cw.CloseWrite(); err != nil {
		t.Errorf("CloseWrite: %v", err)
	}
}

func TestHTTPConnectOversizedHeaders(t *testing.T) {
	srv := serve(t, func(c net.Conn) {
		// Read the request first and hold the conn open afterwards: closing
		// with unread bytes would reset it before the client hits the cap.
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		for range 1000 {
			if _, err := io.WriteString(c, "X-Junk: "+strings.Repeat("j", 100)+"\r\n"); err != nil {
				return
			}
		}
		io.Copy(io.Discard, c)
	})
	d := &HTTPConnect{Address: srv.addr(), Forward: &Direct{}}
	_, err := d.DialContext(testCtx(t), "tcp", "127.0.0.1:1")
	if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "longer than 16384") {
		t.Fatalf("error %v: want ErrProtocol about the 16384-byte cap", err)
	}
}
