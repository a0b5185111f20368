package main_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// TestAutoRouteInbound: a client at an internet address (reached only by
// H's default route, so the LAN bypass cannot hide anything) keeps a TCP
// connection to a server in H through tungate's start and stop, and a new
// connection from it during the run works: replies of inbound connections
// are not captured.
func TestAutoRouteInbound(t *testing.T) {
	t.Parallel()
	l := newARLab(t)
	var listen []string
	for _, fam := range families {
		listen = append(listen, "-tcp-echo", netip.AddrPortFrom(l.hostUp(fam.v6), arInboundPort).String())
	}
	netlab.StartPeer(t, l.host, listen...)
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			dst := netip.AddrPortFrom(l.hostUp(fam.v6), arInboundPort)
			old := l.inboundConn(t, fam.v6, dst)
			exchange(t, old, "before start")
			gw, _ := l.start(t)
			exchange(t, old, "after start")
			fresh := l.inboundConn(t, fam.v6, dst)
			exchange(t, fresh, "new during the run")
			exchange(t, old, "during the run")
			stopClean(t, gw)
			exchange(t, old, "after stop")
			exchange(t, fresh, "after stop")
			if opened(gw, dst) {
				t.Fatalf("tungate saw the inbound flow:\n%s", gw.Output())
			}
		})
	}
}

// inboundConn connects from I's internet address to dst in H.
func (l *arLab) inboundConn(t *testing.T, v6 bool, dst netip.AddrPort) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dialFrom(ctx, l.inet, l.internet(v6), dst)
	if err != nil {
		t.Fatalf("connect from %s to %s: %v", l.internet(v6), dst, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends a line through an echo connection and wants it back
// within 5 s.
func exchange(t *testing.T, c net.Conn, when string) {
	t.Helper()
	msg := []byte(fmt.Sprintf("%s %d\n", when, time.Now().UnixNano()))
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("%s: write: %v", when, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("%s: read the echo: %v", when, err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("%s: echo %q, want %q", when, got, msg)
	}
}
