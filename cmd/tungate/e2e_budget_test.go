package main_test

import (
	"errors"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// dialUDP opens a UDP socket in ns connected to dst, closed when the test
// ends: an ICMP port unreachable for it reads as ECONNREFUSED.
func dialUDP(t *testing.T, ns *netlab.NS, dst netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := ns.Do(func() (err error) { c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst)); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpAsk sends one datagram on c and returns the answer, or the error the
// read got (ECONNREFUSED for ICMP port unreachable).
func udpAsk(c *net.UDPConn) (string, error) {
	if _, err := c.Write([]byte("who am i")); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 128)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

// tcpTry connects to addr from ns and reports the error and how long it
// took; a connection is closed when the test ends.
func tcpTry(t *testing.T, ns *netlab.NS, addr string) (error, time.Duration) {
	start := time.Now()
	var c net.Conn
	err := ns.Do(func() (err error) { c, err = net.DialTimeout("tcp", addr, 3*time.Second); return err })
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return err, time.Since(start)
}

// stoppedCount is a number from tungate's stopped line.
func stoppedCount(t *testing.T, line, re string) int {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("stopped line lacks %s: %s", re, line)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestMaxFlowsSharedByTCPAndUDP: with --max-flows 50, 40 TCP connections
// leave room for 10 UDP sessions: of 20 new sessions 10 are answered and
// 10 refused at once (ECONNREFUSED on the connected socket). Once idle for
// a second, the sessions make room for TCP connections, least recently
// used first: 5 sessions refreshed just before are kept (the 6th
// connection is reset at once) until they too have been idle. With 50 TCP
// connections, every UDP socket is refused, and the counters say so.
func TestMaxFlowsSharedByTCPAndUDP(t *testing.T) {
	if kernelMode() {
		t.Skip("tests tungate itself")
	}
	tp := newTopo(t, "--max-flows", "50")
	echo := tp.srvPort(false, portEcho)
	netlab.StartPeer(t, tp.srv, "-tcp-echo", echo)
	refl := netip.AddrPortFrom(tp.srvAddr(false), portReflector)
	startReflector(t, tp.srv, refl)
	if err := tp.app.WaitTCP(echo, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // WaitTCP's probe connection is released
	dialMany(t, tp.app, echo, 40)

	socks := make([]*net.UDPConn, 20)
	for i := range socks {
		socks[i] = dialUDP(t, tp.app, refl)
	}
	for _, c := range socks { // all at once: no session is idle for a second
		c.Write([]byte("who am i"))
	}
	var answered []*net.UDPConn
	refused := 0
	buf := make([]byte, 128)
	for i, c := range socks {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err := c.Read(buf)
		switch {
		case err == nil:
			answered = append(answered, c)
		case errors.Is(err, syscall.ECONNREFUSED):
			refused++
		default:
			t.Fatalf("UDP socket %d: %v; want an answer or ECONNREFUSED", i, err)
		}
	}
	if len(answered) != 10 || refused != 10 {
		t.Fatalf("%d UDP sessions answered, %d refused; want 10 and 10 (40 of 50 flows are TCP)", len(answered), refused)
	}

	time.Sleep(1200 * time.Millisecond) // every session is idle now
	for _, c := range answered[:5] {    // these five are busy again
		if _, err := udpAsk(c); err != nil {
			t.Fatalf("refreshing a live session: %v", err)
		}
	}
	// fiveThenRefused opens connections first to first+4, each evicting
	// an idle session, and first+5, which must be refused at once.
	fiveThenRefused := func(first int, why string) {
		for i := range 6 {
			err, took := tcpTry(t, tp.app, echo)
			switch {
			case i < 5 && err != nil:
				t.Fatalf("TCP connection %d with idle UDP sessions to evict: %v", first+i, err)
			case i == 5 && (!errors.Is(err, syscall.ECONNREFUSED) || took > time.Second):
				t.Fatalf("TCP connection %d %s: %v after %v; want refused at once", first+i, why, err, took)
			}
		}
	}
	fiveThenRefused(41, "with only busy UDP sessions left")
	time.Sleep(1200 * time.Millisecond) // the refreshed five are idle now
	fiveThenRefused(46, "past --max-flows 50")
	for i, c := range answered { // evicted: a new session finds no room
		if _, err := udpAsk(c); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("UDP socket %d with 50 TCP connections open: %v; want ECONNREFUSED", i, err)
		}
	}

	tp.gw.Stop()
	line := lastLine(tp.gw.Output(), "msg=stopped")
	t.Logf("%s", line)
	if n := stoppedCount(t, line, `udp\.evicted=(\d+)`); n != 10 {
		t.Errorf("%d UDP sessions evicted; want 10", n)
	}
	if n := stoppedCount(t, line, `max_flows:(\d+)`); n != 10+1+1+10 {
		t.Errorf("%d refusals for max_flows; want 22 (10 + 10 UDP sessions, 2 TCP connections)", n)
	}
}

// TestLowFDLimitCountsUDPSockets runs tungate with 200 file descriptors
// and opens 300 UDP sessions at once: each session's host socket counts
// against what the limit leaves, so those past it are refused (ICMP port
// unreachable, every one of them), the descriptors tungate keeps in
// reserve stay free, and DNS through tungate still resolves.
func TestLowFDLimitCountsUDPSockets(t *testing.T) {
	if kernelMode() {
		t.Skip("tests tungate itself")
	}
	tp := newLowFDTopo(t, 200)
	refl := netip.AddrPortFrom(tp.srvAddr(false), portReflector)
	startReflector(t, tp.srv, refl)
	socks := make([]*net.UDPConn, 300)
	for i := range socks {
		socks[i] = dialUDP(t, tp.app, refl)
	}
	for _, c := range socks {
		c.Write([]byte("who am i"))
	}
	answered, refused := 0, 0
	buf := make([]byte, 128)
	deadline := time.Now().Add(3 * time.Second)
	for _, c := range socks {
		c.SetReadDeadline(deadline)
		_, err := c.Read(buf)
		switch {
		case err == nil:
			answered++
		case errors.Is(err, syscall.ECONNREFUSED):
			refused++
		}
	}
	t.Logf("300 UDP sessions: %d answered, %d refused, %d heard nothing", answered, refused, 300-answered-refused)
	// Every refusal is told: --icmp-rate's default burst (1,000) holds
	// them all (the kernel's own 50 would leave most of them silent).
	if answered == 0 || answered > 200-64 || answered+refused != len(socks) {
		t.Errorf("%d answered, %d refused, %d heard nothing; want the sessions bounded below the limit less the reserve, and every other one refused at once", answered, refused, len(socks)-answered-refused)
	}
	tp.checkFDLimitHolds(t)
}
