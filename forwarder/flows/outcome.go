package flows

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/stack/flow"
)

// End is how a flow ended, as the flow log says it.
type End uint32

// Ends of a flow.
const (
	endNone End = iota
	// EndClosed: both sides closed in order (or the gateway stopped).
	EndClosed
	// EndResetByApp and EndResetByUpstream: a read or write failed on
	// that side (a reset, mostly), and the other side was reset.
	EndResetByApp
	EndResetByUpstream
	// EndDialRefused: the destination (or a proxy) refused the dial.
	EndDialRefused
	// EndTimedOut: the dial or a proxy handshake timed out.
	EndTimedOut
	// EndDialFailed: the dial failed otherwise (unreachable, a proxy's
	// rules or credentials, ...).
	EndDialFailed
	// EndBlocked: policy refused the flow before any dial.
	EndBlocked
	// EndIdle: a UDP session (or an echo conversation) saw no datagram
	// for the UDP timeout.
	EndIdle
	// EndKilled: ended through the control API (Table.Kill).
	EndKilled
	numEnds
)

var endNames = [numEnds]string{
	endNone: "closed", EndClosed: "closed", EndResetByApp: "reset_by_app",
	EndResetByUpstream: "reset_by_upstream", EndDialRefused: "dial_refused",
	EndTimedOut: "timed_out", EndDialFailed: "dial_failed", EndBlocked: "blocked",
	EndIdle: "idle", EndKilled: "killed",
}

// String returns the name the flow log uses.
func (e End) String() string {
	if e < numEnds {
		return endNames[e]
	}
	return "closed"
}

// Outcome is what became of a flow when it was opened: the label of the
// flows-opened metric.
type Outcome uint8

// Outcomes of opening a flow.
const (
	// Relayed: the dial succeeded.
	Relayed Outcome = iota
	// Refused: the destination refused.
	Refused
	// TimedOut: the dial or a proxy's handshake timed out.
	TimedOut
	// ProxyFailed: a proxy hop failed (with the hop's index).
	ProxyFailed
	// Failed: the dial failed otherwise, unreachable for one.
	Failed
	// Blocked: policy refused the flow.
	Blocked
	numOutcomes
)

// Outcomes lists every Outcome.
var Outcomes = [...]Outcome{Relayed, Refused, TimedOut, ProxyFailed, Failed, Blocked}

var outcomeNames = [numOutcomes]string{"relayed", "refused", "timed_out", "proxy_failed", "failed", "blocked"}

// String returns the metric label.
func (o Outcome) String() string { return outcomeNames[o] }

func (o Outcome) end() End {
	switch o {
	case Refused:
		return EndDialRefused
	case TimedOut:
		return EndTimedOut
	case Blocked:
		return EndBlocked
	}
	return EndDialFailed
}

// MaxHop is the highest hop index counted on its own; later hops count
// as MaxHop.
const MaxHop = 8

// HopLabel returns the label of hop index i (0 for none).
func HopLabel(i int) string {
	if i == 0 {
		return ""
	}
	return strconv.Itoa(i)
}

// Classify maps a dial error (an upstream's, or the stack's into a
// namespace for a published port) to an Outcome and, for ProxyFailed, the index
// of the failing hop (1 = dialed from the host). A refusal and a timeout
// count as such at any hop; nil is Relayed.
func Classify(err error) (Outcome, int) {
	var timeout interface{ Timeout() bool }
	switch {
	case err == nil:
		return Relayed, 0
	case errors.Is(err, proxy.ErrAddressRefused):
		return Blocked, 0
	case errors.Is(err, proxy.ErrRefused), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, flow.ErrConnectionRefused):
		return Refused, 0
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, proxy.ErrHandshakeTimeout), errors.Is(err, flow.ErrTimeout),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &timeout) && timeout.Timeout():
		return TimedOut, 0
	}
	if he, ok := errors.AsType[*proxy.HopError](err); ok && isProxyFault(he.Err) {
		return ProxyFailed, min(max(he.Index, 1), MaxHop)
	}
	return Failed, 0
}

// isProxyFault tells a hop's own failure (credentials, protocol, a dead
// proxy) from its report that the destination cannot be reached.
func isProxyFault(err error) bool {
	var op *net.OpError
	return errors.Is(err, proxy.ErrAuth) || errors.Is(err, proxy.ErrProtocol) ||
		errors.Is(err, proxy.ErrNotAllowed) || errors.As(err, &op)
}
