package forwarder

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/forwarder/route"
	"github.com/tungate/tungate/stack/flow"
)

// These tests drive the forwarder with plain fakes of the stack's
// requests and of the upstreams: no gVisor.

// fakeRequest is a flow.TCPRequest and flow.UDPRequest that records what
// the forwarder did with it.
type fakeRequest struct {
	src, dst netip.AddrPort
	mu       sync.Mutex
	events   []string
	app      net.Conn // the forwarder's end of Accept's pipe
	peer     net.Conn // the app's end
	done     chan struct{}
}

func newFakeRequest(dst string) *fakeRequest {
	return &fakeRequest{src: netip.MustParseAddrPort("198.18.0.1:40000"), dst: netip.MustParseAddrPort(dst), done: make(chan struct{}, 8)}
}

func (r *fakeRequest) Src() netip.AddrPort { return r.src }
func (r *fakeRequest) Dst() netip.AddrPort { return r.dst }

func (r *fakeRequest) record(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	r.done <- struct{}{}
}

func (r *fakeRequest) Accept(context.Context) (net.Conn, error) {
	r.app, r.peer = net.Pipe()
	r.record("accept")
	return r.app, nil
}

// fakeUDP is a fakeRequest as a flow.UDPRequest, whose Accept takes no
// context.
type fakeUDP struct{ *fakeRequest }

func (r fakeUDP) Accept() (net.Conn, error) { return r.fakeRequest.Accept(context.Background()) }

func (r *fakeRequest) Refuse() { r.record("refuse") }

// wait returns the events once n have happened.
func (r *fakeRequest) wait(t *testing.T, n int) []string {
	t.Helper()
	for range n {
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d events, want %d", len(r.events), n)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

var (
	_ flow.TCPRequest = (*fakeRequest)(nil)
	_ flow.UDPRequest = fakeUDP{}
)

// fixedRouter decides every flow the same way and remembers the flows.
type fixedRouter struct {
	d     route.Decision
	mu    sync.Mutex
	flows []route.Flow
}

func (r *fixedRouter) Decide(f *route.Flow) route.Decision {
	r.mu.Lock()
	r.flows = append(r.flows, *f)
	r.mu.Unlock()
	return r.d
}

// fakeDialer dials by handing out one end of a pipe, or fails with err.
type fakeDialer struct {
	err   error
	mu    sync.Mutex
	dials []string
	far   chan net.Conn
}

func (d *fakeDialer) dial(network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.dials = append(d.dials, network+" "+address)
	d.mu.Unlock()
	if d.err != nil {
		return nil, d.err
	}
	near, far := net.Pipe()
	d.far <- far
	return near, nil
}

func (d *fakeDialer) DialContext(_ context.Context, network, address string) (net.Conn, error) {
	return d.dial(network, address)
}

func (d *fakeDialer) DialPacket(_ context.Context, network, address string) (net.Conn, error) {
	return d.dial(network, address)
}

func newFakeForwarder(t *testing.T, d route.Decision, log *slog.Logger) *Forwarder {
	t.Helper()
	f, err := New(Options{Router: &fixedRouter{d: d}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestFakeRefusedAtOnce(t *testing.T) {
	f := newFakeForwarder(t, route.Decision{Kind: route.Refuse}, nil)
	for _, handle := range []func(*fakeRequest){
		func(r *fakeRequest) { f.HandleTCP(r) },
		func(r *fakeRequest) { f.HandleUDP(fakeUDP{r}) },
	} {
		r := newFakeRequest("10.0.0.1:443")
		handle(r)
		if got := r.wait(t, 1); strings.Join(got, ",") != "refuse" {
			t.Fatalf("events %v, want refuse", got)
		}
	}
}

func TestFakeTCPDialsFirstThenAccepts(t *testing.T) {
	d := &fakeDialer{far: make(chan net.Conn, 1)}
	up := &route.Upstream{Name: "corp", Dialer: d, Proxied: true}
	f := newFakeForwarder(t, route.Decision{Kind: route.Dial, Upstream: up, Dst: route.NameTarget("a.corp.example", 443)}, nil)
	r := newFakeRequest("198.19.0.5:443")
	go f.HandleTCP(r) // an accepted flow runs on it until it ends
	far := <-d.far
	if got := r.wait(t, 1); strings.Join(got, ",") != "accept" {
		t.Fatalf("events %v, want accept after the dial", got)
	}
	if d.dials[0] != "tcp a.corp.example:443" {
		t.Fatalf("dialed %v; want the name", d.dials)
	}
	go r.peer.Write([]byte("hello"))
	buf := make([]byte, 5)
	far.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := far.Read(buf); err != nil || string(buf) != "hello" {
		t.Fatalf("relayed %q, %v", buf, err)
	}
	far.Close()
}

func TestFakeTCPDialFailureRefusesAndLogsHopOncePerSecond(t *testing.T) {
	var buf bytes.Buffer
	hopErr := &proxy.HopError{Index: 2, Hop: "socks5://bob@h:1080", Err: proxy.ErrRefused}
	up := &route.Upstream{Name: "tor", Dialer: &fakeDialer{err: hopErr}, Proxied: true}
	f := newFakeForwarder(t, route.Decision{Kind: route.Dial, Upstream: up, Dst: route.AddrTarget(netip.MustParseAddrPort("10.0.0.1:80"))},
		slog.New(slog.NewTextHandler(&buf, nil)))
	for range 5 {
		r := newFakeRequest("10.0.0.1:80")
		f.HandleTCP(r)
		if got := r.wait(t, 1); got[0] != "refuse" {
			t.Fatalf("events %v, want refuse", got)
		}
	}
	if n := strings.Count(buf.String(), "proxy dial failed"); n != 1 {
		t.Fatalf("%d warnings for 5 failures within a second:\n%s", n, buf.String())
	}
	line := buf.String()
	for _, want := range []string{"chain=tor", "hop=2", "bob@h:1080", "dst=10.0.0.1:80"} {
		if !strings.Contains(line, want) {
			t.Fatalf("warning %q lacks %q", line, want)
		}
	}
}

func TestFakeUDPDialFailureAnswersPortUnreachable(t *testing.T) {
	up := &route.Upstream{Name: "direct", Dialer: &fakeDialer{}, Packets: &fakeDialer{err: errors.New("no route")}}
	app := &refusalRecorder{refused: make(chan netip.AddrPort, 1)}
	f, err := New(Options{UDPApp: app, Router: &fixedRouter{d: route.Decision{Kind: route.Dial, Upstream: up,
		Dst: route.AddrTarget(netip.MustParseAddrPort("10.0.0.1:53"))}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	dst := netip.MustParseAddrPort("10.0.0.1:53")
	if !f.HandleUDPDatagram(netip.MustParseAddrPort("10.0.0.2:4000"), dst, []byte("q")) {
		t.Fatal("refused before the dial")
	}
	select {
	case got := <-app.refused:
		if got != dst {
			t.Fatalf("port unreachable from %v; want %v", got, dst)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no ICMP port unreachable after the failed dial")
	}
}

// refusalRecorder is a udpnat.AppSender that records refusals.
type refusalRecorder struct{ refused chan netip.AddrPort }

func (r *refusalRecorder) SendTo(_, _ netip.AddrPort, _ []byte) error { return nil }

func (r *refusalRecorder) PortUnreachable(_, dst netip.AddrPort) error {
	r.refused <- dst
	return nil
}

// fakeEcho is an EchoSender whose sockets answer every request at once.
type fakeEcho struct{ opened []netip.Addr }

type fakeEchoConn struct{ replies chan uint16 }

func (e *fakeEcho) OpenEcho(dst netip.Addr) (EchoConn, error) {
	e.opened = append(e.opened, dst)
	return &fakeEchoConn{replies: make(chan uint16, 4)}, nil
}

func (c *fakeEchoConn) Send(seq uint16, _ []byte) error { c.replies <- seq; return nil }

func (c *fakeEchoConn) Receive(_ []byte, deadline time.Time) (uint16, []byte, error) {
	select {
	case seq, ok := <-c.replies:
		if !ok {
			return 0, nil, net.ErrClosed
		}
		return seq, []byte("pong"), nil
	case <-time.After(time.Until(deadline)):
		return 0, nil, &net.OpError{Op: "read", Err: errTimeout{}}
	}
}

func (c *fakeEchoConn) Close() error { return nil }

type errTimeout struct{}

func (errTimeout) Error() string { return "timeout" }
func (errTimeout) Timeout() bool { return true }

// replies records the echo replies sent to the app.
type replies chan flow.EchoRequest

func (r replies) ReplyEcho(req *flow.EchoRequest, _ uint8) error { r <- *req; return nil }

func TestFakeEchoFollowsDecision(t *testing.T) {
	for _, kind := range []route.Kind{route.Refuse, route.Dial} {
		echo := &fakeEcho{}
		up := &route.Upstream{Name: "direct", Dialer: &fakeDialer{}, Echo: true}
		f, err := New(Options{Router: &fixedRouter{d: route.Decision{Kind: kind, Upstream: up}}, Echo: echo})
		if err != nil {
			t.Fatal(err)
		}
		rep := make(replies, 1)
		f.HandleEcho(&flow.EchoRequest{Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("10.0.0.1"), ID: 7, Seq: 3, Replier: rep})
		select {
		case got := <-rep:
			if kind == route.Refuse || got.ID != 7 || got.Seq != 3 || string(got.Payload) != "pong" {
				t.Errorf("%v: reply %+v", kind, got)
			}
		case <-time.After(time.Second):
			if kind == route.Dial {
				t.Errorf("dial: no reply")
			}
		}
		if kind == route.Refuse && len(echo.opened) != 0 {
			t.Errorf("refused echo opened a socket")
		}
		f.Close()
	}
}
