package forwarder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/tungate/tungate/forwarder/route"
	"github.com/tungate/tungate/stack/flow"
)

// maxDatagram holds any UDP payload, so datagrams up to the MTU (and
// reassembled ones beyond it) pass whole.
const maxDatagram = 64 << 10

var datagramBufs = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}

// udpKey names a session: one app source talking to one destination.
type udpKey struct{ src, dst netip.AddrPort }

// UDPSession relays the datagrams of one (app source, destination) pair
// through its own upstream socket. It ends after Options.UDPTimeout without
// a datagram in either direction.
type UDPSession struct {
	key      udpKey
	app      net.Conn
	upstream net.Conn
	idle     *time.Timer
	timeout  time.Duration
	// refused tells the app that the destination refused a datagram.
	refused func()
}

// udpTable tracks live sessions so that each pair has exactly one.
type udpTable struct {
	mu       sync.Mutex
	sessions map[udpKey]*UDPSession
}

func newUDPTable() *udpTable { return &udpTable{sessions: make(map[udpKey]*UDPSession)} }

// add registers s unless its pair already has a session.
func (t *udpTable) add(s *UDPSession) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.sessions[s.key]; ok {
		return false
	}
	t.sessions[s.key] = s
	return true
}

func (t *udpTable) remove(s *UDPSession) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sessions[s.key] == s {
		delete(t.sessions, s.key)
	}
}

// Len returns the number of live sessions.
func (t *udpTable) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sessions)
}

// HandleUDP implements stack.Handler. It runs on the packet path, so it
// only decides and creates the app-side endpoint, and leaves the upstream
// dial to the session's goroutine; datagrams that arrive meanwhile wait in
// the endpoint's queue. A refused flow, and one whose dial fails, gets
// ICMP port unreachable at once.
func (f *Forwarder) HandleUDP(r flow.UDPRequest) {
	fl, d, ok := f.admit(route.UDP, r)
	if !ok {
		return
	}
	t := f.sessionTicket(r, fl, d)
	if t == nil {
		return
	}
	app, err := r.Accept()
	if err != nil {
		t.Release()
		f.log.Debug("udp endpoint failed", "src", fl.Src, "dst", fl.Dst, "err", err)
		return
	}
	s := &UDPSession{key: udpKey{fl.Src, fl.Dst}, app: app, timeout: f.opts.UDPTimeout, refused: r.Refuse}
	if !f.udp.add(s) {
		t.Release()
		s.app.Close()
		return
	}
	if !f.goFlow(func(ctx context.Context) { defer t.Release(); f.runUDP(ctx, s, fl, d) }) {
		t.Release()
		f.udp.remove(s)
		r.Refuse()
		s.app.Close()
	}
}

func (f *Forwarder) runUDP(ctx context.Context, s *UDPSession, fl *route.Flow, d route.Decision) {
	defer f.udp.remove(s)
	up, err := f.open(ctx, fl, d)
	if err != nil {
		f.log.Debug("udp dial failed", "src", s.key.src, "dst", s.key.dst, "err", err)
		if ctx.Err() == nil {
			s.refused()
		}
		s.app.Close()
		return
	}
	s.upstream = up
	f.log.Debug("udp open", "src", s.key.src, "dst", s.key.dst)
	if err := s.Run(ctx); err != nil {
		f.log.Debug("udp session ended", "src", s.key.src, "dst", s.key.dst, "err", err)
	}
}

// Run relays until the session is idle for its timeout, either side fails,
// or ctx ends; then it closes both sides.
func (s *UDPSession) Run(ctx context.Context) error {
	closeBoth := func() {
		s.app.Close()
		s.upstream.Close()
	}
	s.idle = time.AfterFunc(s.timeout, closeBoth)
	defer s.idle.Stop()
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()

	errc := make(chan error, 1)
	go func() { errc <- s.copy(s.upstream, s.app, "app -> upstream", closeBoth) }()
	errDown := s.copy(s.app, s.upstream, "upstream -> app", closeBoth)
	return errors.Join(<-errc, errDown)
}

// passRefusal passes an upstream "port unreachable" on to the app and
// reports whether it did; the session goes on, as a UDP socket does.
func (s *UDPSession) passRefusal(src net.Conn, err error) bool {
	if src != s.upstream || !errors.Is(err, syscall.ECONNREFUSED) {
		return false
	}
	s.refused()
	return true
}

// copy moves datagrams from src to dst; when it stops it closes both
// sides, which stops its sibling.
func (s *UDPSession) copy(dst, src net.Conn, dir string, closeBoth func()) error {
	defer closeBoth()
	for {
		bp, n, err := readReady(src, datagramLender{})
		if err == nil {
			s.idle.Reset(s.timeout)
			_, err = dst.Write((*bp)[:n])
		}
		if bp != nil {
			datagramBufs.Put(bp)
		}
		if err != nil && s.passRefusal(src, err) {
			continue
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
				return nil // the sibling or the idle timer ended us
			}
			return fmt.Errorf("%s: %w", dir, err)
		}
	}
}

// datagramLender lends datagram buffers from their pool.
type datagramLender struct{}

func (datagramLender) get() *[]byte        { return datagramBufs.Get().(*[]byte) }
func (datagramLender) giveBack(bp *[]byte) { datagramBufs.Put(bp) }
