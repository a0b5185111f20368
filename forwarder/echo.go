package forwarder

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/tungate/tungate/stack"
)

// EchoSender is what the forwarder needs to send echo requests from the
// host; *HostPinger implements it.
type EchoSender interface {
	open(dst netip.Addr) (*echoSocket, error)
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
	sock *echoSocket
	// hostID is the identifier used on the host side of a raw socket, chosen
	// at random so concurrent pingers cannot take each other's replies.
	hostID uint16
	tmpl   stack.EchoRequest
	last   time.Time
	mu     sync.Mutex
}

type echoTable struct {
	mu       sync.Mutex
	sessions map[echoKey]*echoSession
}

func newEchoTable() *echoTable { return &echoTable{sessions: make(map[echoKey]*echoSession)} }

// HandleEcho implements stack.Handler.
func (f *Forwarder) HandleEcho(req *stack.EchoRequest) {
	if f.opts.Echo == nil || !f.allowed("icmp", netip.AddrPortFrom(req.Dst, 0)) {
		return
	}
	key := echoKey{req.Src, req.Dst, req.ID}
	f.echo.mu.Lock()
	s, ok := f.echo.sessions[key]
	if !ok {
		sock, err := f.opts.Echo.open(req.Dst)
		if err != nil {
			f.echo.mu.Unlock()
			f.log.Warn("echo request dropped", "dst", req.Dst, "err", err)
			return
		}
		s = &echoSession{key: key, sock: sock, hostID: uint16(rand.Uint32()), tmpl: *req}
		if !f.goFlow(func(ctx context.Context) { f.runEcho(ctx, s) }) {
			f.echo.mu.Unlock()
			sock.conn.Close()
			return
		}
		f.echo.sessions[key] = s
	}
	f.echo.mu.Unlock()
	s.mu.Lock()
	s.last = time.Now()
	s.mu.Unlock()
	if err := s.sock.send(s.hostID, req.Seq, req.Payload); err != nil {
		f.log.Debug("echo send failed", "dst", req.Dst, "err", err)
	}
}

// runEcho delivers replies until the session has been idle for the UDP
// timeout or ctx ends.
func (f *Forwarder) runEcho(ctx context.Context, s *echoSession) {
	defer func() {
		f.echo.mu.Lock()
		delete(f.echo.sessions, s.key)
		f.echo.mu.Unlock()
		s.sock.conn.Close()
	}()
	stop := context.AfterFunc(ctx, func() { s.sock.conn.Close() })
	defer stop()
	buf := make([]byte, maxDatagram)
	for {
		s.sock.conn.SetReadDeadline(time.Now().Add(time.Second))
		n, err := s.sock.conn.Read(buf)
		if err != nil {
			s.mu.Lock()
			idle := time.Since(s.last) > f.opts.UDPTimeout
			s.mu.Unlock()
			if ctx.Err() != nil || idle || !isTimeout(err) {
				return
			}
			continue
		}
		id, seq, payload, err := s.sock.parseReply(buf[:n])
		if err != nil || (s.sock.raw && id != s.hostID) {
			continue
		}
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
