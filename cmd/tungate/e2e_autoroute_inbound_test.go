package main_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
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
			if !notOpened(gw, dst) {
				t.Fatalf("tungate saw the inbound flow:\n%s", gw.Output())
			}
		})
	}
}

// TestAutoRouteInboundServerFirst: an inbound TCP connection from before
// start whose first packet after start is the server's (conntrack, started
// by tungate's nft table, first sees it in the middle, from this side) keeps
// its route: tungate's nft table recognises it by the missing SYN.
func TestAutoRouteInboundServerFirst(t *testing.T) {
	t.Parallel()
	l := newARLab(t)
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			server := l.acceptOne(t, netip.AddrPortFrom(l.hostUp(fam.v6), arInboundPort+1))
			client := l.inboundConn(t, fam.v6, netip.AddrPortFrom(l.hostUp(fam.v6), arInboundPort+1))
			srv := <-server
			gw, _ := l.start(t)
			for _, when := range []string{"after start", "after stop"} {
				// The server speaks first, then the client answers.
				msg := []byte(when + "\n")
				_ = srv.SetDeadline(time.Now().Add(5 * time.Second))
				_ = client.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := srv.Write(msg); err != nil {
					t.Fatalf("%s: server write: %v", when, err)
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(client, got); err != nil {
					t.Fatalf("%s: the client did not get the server's bytes: %v", when, err)
				}
				if _, err := client.Write(got); err != nil {
					t.Fatalf("%s: client write: %v", when, err)
				}
				if _, err := io.ReadFull(srv, got); err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("%s: server read %q, %v", when, got, err)
				}
				if when == "after start" {
					stopClean(t, gw)
				}
			}
		})
	}
}

// acceptOne listens on addr in H and delivers the first connection.
func (l *arLab) acceptOne(t *testing.T, addr netip.AddrPort) <-chan net.Conn {
	t.Helper()
	var ln net.Listener
	if err := l.host.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 1)
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			close(conns)
			return
		}
		t.Cleanup(func() { c.Close() })
		conns <- c
	}()
	t.Cleanup(func() { ln.Close() })
	return conns
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

// TestAutoRouteStrictRPFilter: with strict reverse-path filtering and
// src_valid_mark in H (the set-up the README asks for), tungate's own flows,
// direct flows (an excluded user's) and inbound connections still work, and
// tungate warns about rp_filter only when src_valid_mark is off.
func TestAutoRouteStrictRPFilter(t *testing.T) {
	t.Parallel()
	l := newARLab(t)
	netlab.RequireBinary(t, "setpriv")
	netlab.RequireBinary(t, "sysctl")
	netlab.StartPeer(t, l.host, "-tcp-echo", netip.AddrPortFrom(l.hostUp(false), arInboundPort).String())
	l.host.MustRun(t, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=1")
	gw, _ := l.start(t)
	if !strings.Contains(gw.Output(), "strict reverse-path filtering") {
		t.Errorf("no warning about rp_filter=1 without src_valid_mark:\n%s", gw.Output())
	}
	stopClean(t, gw)
	l.host.MustRun(t, "sysctl", "-q", "-w", "net.ipv4.conf.all.src_valid_mark=1")
	gw, _ = l.start(t, "--exclude-uid", strconv.Itoa(arOtherUID))
	if strings.Contains(gw.Output(), "strict reverse-path filtering") {
		t.Errorf("a warning about rp_filter although src_valid_mark is on:\n%s", gw.Output())
	}
	dst := netip.AddrPortFrom(l.internet(false), arEchoPort)
	echoFrom(t, l.host, dst)
	if !opened(gw, dst) {
		t.Fatalf("TCP to %s did not go through tungate:\n%s", dst, gw.Output())
	}
	l.curlAs(t, arOtherUID, l.internet(false))
	exchange(t, l.inboundConn(t, false, netip.AddrPortFrom(l.hostUp(false), arInboundPort)), "inbound")
	stopClean(t, gw)
}
