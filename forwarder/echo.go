package forwarder

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/forwarder/route"
	"github.com/tungate/tungate/stack/flow"
)

// EchoSender opens the host sockets that echo requests leave through;
// *HostPinger is one, and a test can fake it.
type EchoSender interface {
	// OpenEcho opens a socket that sends echo requests to dst and
	// receives dst's replies to them.
	OpenEcho(dst netip.Addr) (EchoConn, error)
}

// EchoConn is one host socket's echo conversation with one destination.
type EchoConn interface {
	// Send sends an echo request with seq and payload; the identifier is
	// the socket's own.
	Send(seq uint16, payload []byte) error
	// Receive returns the next echo reply to this socket's requests, its
	// sequence number and payload (which may alias buf). It fails with an
	// error that has Timeout() true once deadline passes.
	Receive(buf []byte, deadline time.Time) (seq uint16, payload []byte, err error)
	// Close closes the socket and makes a waiting Receive return.
	Close() error
}

var _ EchoSender = (*HostPinger)(nil)

// replyTTL is the TTL of the echo replies we write; the host sockets do not
// tell us the one the real reply arrived with.
const replyTTL = 64

type echoKey struct {
	src, dst netip.Addr
	id       uint16
}

// echoSession carries one app's pings (one identifier) to one destination
// through a host socket, and the replies back.
type echoSession struct {
	key  echoKey
	sock EchoConn
	tmpl flow.EchoRequest
	// flow is the conversation's entry in the flow table (nil without).
	flow *flows.Flow
	last time.Time
	mu   sync.Mutex
}

type echoTable struct {
	mu       sync.Mutex
	sessions map[echoKey]*echoSession
}

func newEchoTable() *echoTable { return &echoTable{sessions: make(map[echoKey]*echoSession)} }

// HandleEcho implements stack.Handler. The first request of a session is
// decided by the router; a refused one gets no reply.
func (f *Forwarder) HandleEcho(req *flow.EchoRequest) {
	key := echoKey{req.Src, req.Dst, req.ID}
	f.echo.mu.Lock()
	s, ok := f.echo.sessions[key]
	if !ok {
		s = f.newEcho(req)
		if s == nil {
			f.echo.mu.Unlock()
			return
		}
		f.echo.sessions[key] = s
	}
	f.echo.mu.Unlock()
	s.mu.Lock()
	s.last = time.Now()
	s.mu.Unlock()
	s.flow.Up().AddDatagram(len(req.Payload))
	if err := s.sock.Send(req.Seq, req.Payload); err != nil {
		f.log.Debug("echo send failed", "dst", req.Dst, "err", err)
	}
}

// newEcho decides a new echo flow and, if it may go, opens its socket
// and starts its session; nil means the request is dropped. f.echo.mu is
// held. The flow table shows the session with the echo identifier as its
// source port.
func (f *Forwarder) newEcho(req *flow.EchoRequest) *echoSession {
	fl := route.Flow{Proto: route.ICMP, Src: netip.AddrPortFrom(req.Src, 0), Dst: netip.AddrPortFrom(req.Dst, 0)}
	d := f.guard(f.decide(&fl))
	if f.opts.Echo == nil {
		d = route.Decision{Kind: route.Refuse, Builtin: "no-icmp"}
	}
	fl.Src = netip.AddrPortFrom(req.Src, req.ID)
	t := f.track(&fl, d)
	if d.Kind != route.Dial {
		return nil
	}
	sock, err := f.opts.Echo.OpenEcho(req.Dst)
	t.Opened(err)
	if err != nil {
		f.log.Warn("echo request dropped", "dst", req.Dst, "err", err)
		return nil
	}
	s := &echoSession{key: echoKey{req.Src, req.Dst, req.ID}, sock: sock, tmpl: *req, flow: t}
	// Killing the flow closes the socket, which ends runEcho.
	t.SetCloser(func() { sock.Close() })
	if !f.goFlow(func(ctx context.Context) { f.runEcho(ctx, s) }) {
		sock.Close()
		t.Finish(flows.EndClosed)
		return nil
	}
	return s
}

// runEcho delivers replies until the session has been idle for the UDP
// timeout or ctx ends.
func (f *Forwarder) runEcho(ctx context.Context, s *echoSession) {
	defer func() {
		f.echo.mu.Lock()
		delete(f.echo.sessions, s.key)
		f.echo.mu.Unlock()
		s.sock.Close()
		s.flow.Finish(flows.EndClosed)
	}()
	stop := context.AfterFunc(ctx, func() { s.sock.Close() })
	defer stop()
	buf := make([]byte, maxDatagram)
	for {
		seq, payload, err := s.sock.Receive(buf, time.Now().Add(time.Second))
		if err != nil {
			s.mu.Lock()
			idle := time.Since(s.last) > f.opts.UDPTimeout
			s.mu.Unlock()
			if idle && ctx.Err() == nil {
				s.flow.Ending(flows.EndIdle)
			}
			if ctx.Err() != nil || idle || !isTimeout(err) {
				return
			}
			continue
		}
		s.flow.Down().AddDatagram(len(payload))
		rep := s.tmpl
		rep.Seq = seq
		rep.Payload = payload
		if err := rep.Reply(replyTTL); err != nil {
			f.log.Debug("echo reply failed", "dst", s.key.dst, "err", err)
		}
	}
}

func isTimeout(err error) bool {
	t, ok := err.(interface{ Timeout() bool })
	return ok && t.Timeout()
}
