package main_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// TestSpoofedFloodOpenPort sends 4,000 SYNs from spoofed sources (which
// never answer the SYN-ACK) to an open port in 5 s. Each one's dial
// succeeds; the app's handshake then never completes, and must free its
// slot and close the upstream connection within --app-handshake-timeout
// (5 s), while a canary to another destination connects within 1 s
// throughout.
func TestSpoofedFloodOpenPort(t *testing.T) {
	if kernelMode() {
		t.Skip("tests tungate itself")
	}
	netlab.RequireBinary(t, "ss")
	tp := newTopo(t)
	netlab.StartPeer(t, tp.srv, "-tcp-echo", tp.srvPort(false, portEcho), "-tcp-echo", tp.srvPort(true, portEcho))
	if err := tp.app.WaitTCP(tp.srvPort(true, portEcho), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		synFlood(t, tp.app, netip.AddrPortFrom(netip.MustParseAddr("198.18.0.1"), 0),
			netip.AddrPortFrom(tp.srvAddr(false), portEcho), 4000, 800, true)
	}()
	var worst time.Duration
	peak := 0
	for flooding := true; flooding; {
		select {
		case <-done:
			flooding = false
		case <-time.After(250 * time.Millisecond):
			took, err := canary(tp.app, tp.srvPort(true, portEcho))
			worst = max(worst, took)
			if err != nil || took > time.Second {
				t.Errorf("canary during the flood: %v after %v; want connected within 1 s", err, took.Round(time.Millisecond))
			}
			peak = max(peak, upstreamConns(t, tp))
		}
	}
	end := time.Now()
	left := -1
	for time.Since(end) < 10*time.Second {
		if left = upstreamConns(t, tp); left == 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("slowest canary %v; upstream connections: peak %d, gone %v after the flood", worst.Round(time.Millisecond), peak, time.Since(end).Round(100*time.Millisecond))
	if left != 0 {
		t.Errorf("%d upstream connections of abandoned handshakes still open 10 s after the flood; want none after --app-handshake-timeout", left)
	}
	if peak > 200 {
		t.Errorf("%d upstream connections at once for one destination; want at most its share of --max-pending (128) and a few", peak)
	}
}

// upstreamConns counts the established connections to the server's IPv4
// echo port.
func upstreamConns(t *testing.T, tp *topo) int {
	out, err := runIn(t, tp.srv, 5*time.Second, "ss", "-Htn", "state", "established", "src", tp.srvPort(false, portEcho))
	if err != nil {
		t.Fatalf("ss: %v\n%s", err, out)
	}
	if out == "" {
		return 0
	}
	return len(strings.Split(out, "\n"))
}
