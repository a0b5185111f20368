package main_test

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// TestProxyRefusesUDPAssociate: microsocks answers UDP ASSOCIATE with
// "command not supported". A UDP app behind it hears ICMP port unreachable
// (connection refused on a connected socket) within a second, each time;
// tungate warns once, naming --udp block and --udp direct, and asks the
// proxy once, not per session.
func TestProxyRefusesUDPAssociate(t *testing.T) {
	t.Parallel()
	l := newProxyLab(t, 1<<20)
	l.startMicrosocks(t, portMicrosocks, "", "")
	echo := netip.AddrPortFrom(l.srvAddr(false), portUDPEcho1)
	netlab.StartPeer(t, l.srv, "-udp-echo", echo.String())
	app, gw := l.gateway(t, "--proxy", l.proxyURL("socks5", nil, portMicrosocks))
	if !strings.Contains(gw.Output(), "udp=proxy") {
		t.Fatalf("one SOCKS5 hop should default to --udp proxy:\n%s", gw.Output())
	}
	for i := range 3 {
		start := time.Now()
		err := app.Do(func() error {
			c, err := net.Dial("udp4", echo.String())
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte("hello")); err != nil {
				return err
			}
			_, err = c.Read(make([]byte, 100))
			return err
		})
		took := time.Since(start)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("UDP session %d through microsocks: %v after %v, want connection refused", i+1, err, took)
		}
		if took > time.Second {
			t.Fatalf("UDP session %d through microsocks refused after %v, want within 1s", i+1, took)
		}
		t.Logf("UDP session %d: refused after %v", i+1, took)
	}
	// The warning is written before the refusal is sent, but the pipe
	// that carries tungate's stderr to gw.Output may lag behind (seen
	// under the full suite's load).
	gw.WaitOutput(`msg="the proxy refuses UDP (`, 2*time.Second)
	out := gw.Output()
	if n := strings.Count(out, `msg="the proxy refuses UDP (`); n != 1 {
		t.Fatalf("%d warnings about the UDP refusal, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "--udp block") || !strings.Contains(out, "--udp direct") {
		t.Fatalf("the warning does not name --udp block and --udp direct:\n%s", out)
	}
	// TCP through the same proxy still works.
	l.download(t, app, l.webURL(false))
}
