package proxy

import (
	"errors"
	"strings"
	"testing"
)

func TestSOCKS4(t *testing.T) {
	echo := startEcho(t)
	tests := []struct {
		name        string
		reply       byte
		remoteNames bool
		target      string
		wantTarget  string // what the proxy must have been asked for
		wantErr     error
		wantText    string
	}{
		{name: "socks4 ipv4", target: echo.addr(), wantTarget: echo.addr()},
		{name: "socks4a name", remoteNames: true, target: "echo.example:" + port(echo.addr()),
			wantTarget: "echo.example:" + port(echo.addr())},
		{name: "socks4a ipv4 sent as IP", remoteNames: true, target: echo.addr(), wantTarget: echo.addr()},
		{name: "socks4 name", target: "echo.example:80", wantText: "use socks4a://"},
		{name: "socks4 ipv6", target: "[::1]:80", wantText: "only IPv4"},
		{name: "rejected", reply: 91, target: echo.addr(), wantErr: ErrRefused, wantText: "reply 91"},
		{name: "identd", reply: 93, target: echo.addr(), wantErr: ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSOCKS4(t, &fakeSOCKS4{reply: tt.reply})
			d := &SOCKS4{Address: srv.addr(), UserID: "bob", RemoteNames: tt.remoteNames, Forward: &Direct{}}
			conn, err := d.DialContext(testCtx(t), "tcp", tt.target)
			if tt.wantErr == nil && tt.wantText == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				echoRoundTrip(t, conn, "hello through socks4")
				srv.mu.Lock()
				defer srv.mu.Unlock()
				if srv.target != tt.wantTarget || srv.userID != "bob" {
					t.Errorf("proxy saw target %q user %q, want %q and bob", srv.target, srv.userID, tt.wantTarget)
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

func TestSOCKS4NoUDP(t *testing.T) {
	var d Dialer = &SOCKS4{}
	if _, ok := d.(PacketDialer); ok {
		t.Fatal("SOCKS4 claims to carry UDP")
	}
}
