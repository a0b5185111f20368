package main_test

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// UDP echo ports of the peer server in S.
const (
	portUDPEcho1 = 7101
	portUDPEcho2 = 7102
)

func TestUDPEcho(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	var listen []string
	for _, fam := range families {
		for _, port := range []uint16{portUDPEcho1, portUDPEcho2} {
			listen = append(listen, "-udp-echo", tp.srvPort(fam.v6, port))
		}
	}
	netlab.StartPeer(t, tp.srv, listen...)
	for _, fam := range families {
		for _, size := range []int{1, 512, 1400} {
			t.Run(fmt.Sprintf("%s/%d-bytes", fam.name, size), func(t *testing.T) {
				// One socket talks to two servers: each echo must come back
				// from the address and port it was sent to.
				tp.peer(t, "udp", "-size", fmt.Sprint(size),
					"-addr", tp.srvPort(fam.v6, portUDPEcho1), "-addr", tp.srvPort(fam.v6, portUDPEcho2))
			})
		}
	}
	// Every echo went past gVisor both ways (the fast path), and the
	// stopped line says so.
	tp.gw.Stop()
	line := lastLine(tp.gw.Output(), "stopped")
	m := regexp.MustCompile(`udp_fast\.in=(\d+) udp_fast\.out=(\d+)`).FindStringSubmatch(line)
	if m == nil || m[1] == "0" || m[2] == "0" {
		t.Errorf("stopped line %q: want udp_fast.in and udp_fast.out counting the echoes", line)
	}
}

func TestDNS(t *testing.T) {
	t.Parallel()
	netlab.RequireBinary(t, "dig")
	tp := newTopo(t)
	records := map[string][]netip.Addr{
		"test.tungate": {tp.net.V4(99)},
		"v6.tungate":   {tp.net.V6(99)},
	}
	netlab.StartDNSMasq(t, tp.srv, []netip.Addr{tp.srvAddr(false), tp.srvAddr(true)}, records)
	queries := []struct{ name, qtype, want string }{
		{"test.tungate", "A", tp.net.V4(99).String()},
		{"v6.tungate", "AAAA", tp.net.V6(99).String()},
	}
	for _, fam := range families {
		for _, transport := range []string{"+notcp", "+tcp"} {
			for _, q := range queries {
				t.Run(fmt.Sprintf("%s/%s/%s", fam.name, strings.TrimPrefix(transport, "+"), q.qtype), func(t *testing.T) {
					out, err := runIn(t, tp.app, 20*time.Second, "dig", "@"+tp.srvAddr(fam.v6).String(),
						q.name, q.qtype, transport, "+short", "+time=2", "+tries=2")
					if err != nil || out != q.want {
						t.Fatalf("dig %s %s %s: got %q (err %v), want %q", q.name, q.qtype, transport, out, err, q.want)
					}
				})
			}
		}
	}
}
