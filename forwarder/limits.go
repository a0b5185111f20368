package forwarder

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tungate/tungate/forwarder/admission"
	"github.com/tungate/tungate/forwarder/route"
	"github.com/tungate/tungate/forwarder/udpnat"
)

// Defaults of the flow-ending timeouts.
const (
	// DefaultHandshakeTimeout bounds the app's side of a TCP handshake,
	// after the upstream dial succeeded: an app (or a spoofed source) that
	// never completes it frees its pending slot and the upstream
	// connection within this time.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultHalfClosedTimeout is how long a flow lives once one side has
	// closed and nothing has moved since (like conntrack's CLOSE_WAIT and
	// the kernel's orphaned FIN_WAIT2, 60 s).
	DefaultHalfClosedTimeout = 60 * time.Second
)

// limiter is the forwarder's use of an admission gate: it refuses at once
// what the gate refuses, and logs refusals at most once a second per
// reason.
type limiter struct {
	gate     *admission.Gate
	fdLimit  int // RLIMIT_NOFILE, for the message; 0 if unknown
	throttle [admission.NumReasons]admission.Throttle
	// halfClosed counts the flows reset as half-closed and idle.
	halfClosed atomic.Uint64
}

// class is the admission class of the flow fl decided d: DNS (answered in
// process, or any flow to port 53) keeps working while the caps bite.
func class(fl *route.Flow, d route.Decision) admission.Class {
	if d.Kind == route.Answer || fl.Dst.Port() == route.DNSPort {
		return admission.Reserved
	}
	return admission.Ordinary
}

// refused logs a refusal for r of a proto flow from src to dst, at most
// once a second per reason; refusals for Closed (tungate is stopping) are
// not logged. It takes values so that a throttled refusal does not
// allocate.
func (f *Forwarder) refused(r admission.Reason, proto route.Proto, src, dst netip.AddrPort) {
	if r == admission.Closed {
		return
	}
	ok, held := f.lim.throttle[r].Allow(time.Now())
	if !ok {
		return
	}
	l := f.lim.gate.Limits()
	args := []any{"reason", r.String(), "proto", proto.String(), "src", src, "dst", dst, "refused_before", held}
	switch r {
	case admission.FDs:
		u := f.lim.gate.Usage()
		f.log.Warn("out of file descriptors: refusing new flows; raise the limit (ulimit -n, or LimitNOFILE= in a systemd unit)",
			append(args, "nofile", f.lim.fdLimit, "flows", u.Flows, "sockets", u.Sockets)...)
		return
	case admission.Flows:
		args = append(args, "max_flows", l.MaxFlows)
	case admission.UDPSessions:
		args = append(args, "max_udp_sessions", l.MaxUDPSessions)
	case admission.Pending:
		args = append(args, "max_pending", l.MaxPending)
	case admission.Destination:
		args = append(args, "max_pending_per_dst", l.PendingPerDst, "prefix", admission.DstPrefixOf(dst.Addr()))
	case admission.Source:
		args = append(args, "max_pending_per_src", l.PendingPerSrc)
	}
	f.log.Warn("flow refused at a cap", args...)
}

// outOfFDs reports whether err is the system's "too many open files".
func outOfFDs(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// dialTicket admits the TCP flow fl to dial, or returns nil after
// refusing r at once.
func (f *Forwarder) dialTicket(r request, fl *route.Flow, d route.Decision) *admission.Ticket {
	t, why := f.lim.gate.Dial(fl.Src.Addr(), fl.Dst.Addr(), class(fl, d))
	if t == nil {
		r.Refuse()
		f.refused(why, fl.Proto, fl.Src, fl.Dst)
	}
	return t
}

// udpClass is the admission class of a UDP session or socket whose
// datagram goes to dst: DNS keeps working while the caps bite.
func udpClass(dst netip.AddrPort) admission.Class {
	if dst.Port() == route.DNSPort {
		return admission.Reserved
	}
	return admission.Ordinary
}

// udpBudget is the UDP session table's share of the gate (udpnat.Budget):
// a session holds a flow, each of its host sockets a descriptor. Its
// methods run under the table's lock.
type udpBudget struct{ f *Forwarder }

func (b udpBudget) Take(app, dst netip.AddrPort, evict func() bool) udpnat.Slot {
	t, why := b.f.lim.gate.Session(udpClass(dst), evict)
	if t == nil {
		b.f.refused(why, route.UDP, app, dst)
		return nil
	}
	return &udpSlot{f: b.f, t: t, app: app}
}

// udpSlot is one UDP session's ticket.
type udpSlot struct {
	f   *Forwarder
	t   *admission.Ticket
	app netip.AddrPort
}

func (s *udpSlot) AddSocket(dst netip.AddrPort, evict func() bool) bool {
	why := s.t.AddSocket(udpClass(dst), evict)
	if why != admission.Admitted {
		s.f.refused(why, route.UDP, s.app, dst)
		return false
	}
	return true
}

func (s *udpSlot) DropSocket() { s.t.DropSocket() }
func (s *udpSlot) Release()    { s.t.Release() }

// Refused returns how many flows the caps refused, by reason.
func (f *Forwarder) Refused() map[string]uint64 { return f.lim.gate.Refused() }

// Usage returns the flows and pending dials open now.
func (f *Forwarder) Usage() admission.Usage { return f.lim.gate.Usage() }

// relayEnded counts a relay's end, given its result.
func (f *Forwarder) relayEnded(err error) {
	if errors.Is(err, errHalfClosed) {
		f.lim.halfClosed.Add(1)
	}
}

// HalfClosedResets returns how many flows were reset as half-closed and
// idle (Options.HalfClosedTimeout).
func (f *Forwarder) HalfClosedResets() uint64 { return f.lim.halfClosed.Load() }
