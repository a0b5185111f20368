package forwarder

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/forwarder/route"
)

// What the forwarder tells the flow table (Options.Flows): each flow (a
// TCP connection, a UDP session, an echo conversation) is added when it is
// decided (a refused one is counted as blocked and
// logged at once), its dial is timed, the relay counts its bytes into the
// flow's halves, and it is finished when its goroutine ends. With no
// table every call below is a no-op on a nil *flows.Flow.

// track adds f, decided as d, to the flow table.
func (fw *Forwarder) track(f *route.Flow, d route.Decision) *flows.Flow {
	t := fw.opts.Flows
	if t == nil {
		return nil
	}
	s := flows.Start{Protocol: flows.TCP, Src: f.Src, Dst: f.Dst, Name: f.Name, Route: routeText(d, f.Proto)}
	switch f.Proto {
	case route.UDP:
		s.Protocol = flows.UDP
	case route.ICMP:
		s.Protocol = flows.ICMP
	}
	if d.Upstream != nil {
		s.Chain = d.Upstream.Name
	}
	if d.Kind == route.Refuse {
		t.Blocked(s)
		return nil
	}
	return t.Begin(s)
}

// guard refuses a decision to dial an address that Options.Unreachable
// keeps out of reach (tungate's own API listener).
func (fw *Forwarder) guard(d route.Decision) route.Decision {
	if d.Kind == route.Dial && d.Dst.Name == "" && fw.opts.Unreachable != nil && fw.opts.Unreachable(d.Dst.Addr) {
		return route.Decision{Kind: route.Refuse, Builtin: "tungate-api"}
	}
	return d
}

// addrCheck vets the addresses that the name of d.Dst resolves to on the
// host: none may reach tungate's API (Options.Unreachable) nor, when d
// says so, the host's loopback; the rules saw the app's fake address
// only. nil when there is nothing to check.
func (fw *Forwarder) addrCheck(d route.Decision) proxy.AddrCheck {
	unreachable := fw.opts.Unreachable
	if unreachable == nil && !d.RefuseLoopback {
		return nil
	}
	return func(dst netip.AddrPort) error {
		switch {
		case unreachable != nil && unreachable(dst):
			return fmt.Errorf("%s is tungate's API: %w", dst, proxy.ErrAddressRefused)
		case d.RefuseLoopback && route.ReachesHostLoopback(dst.Addr()):
			return fmt.Errorf("%s is the host's loopback: %w", dst, proxy.ErrAddressRefused)
		}
		return nil
	}
}

// routeText is a flow's route as the flow table shows it: the upstream
// (with the hops this protocol takes, which a chain prints without
// passwords) or "in-process", and the rule that chose it.
func routeText(d route.Decision, proto route.Proto) string {
	var b strings.Builder
	switch {
	case d.Kind == route.Answer:
		b.WriteString("in-process")
	case d.Upstream != nil:
		b.WriteString(d.Upstream.Name)
		var via any = d.Upstream.Dialer
		if proto == route.UDP {
			via = d.Upstream.Packets
		}
		if hops, ok := via.(fmt.Stringer); ok {
			b.WriteString(" " + hops.String())
		} else if d.Upstream.Proxied {
			b.WriteString(" (" + proto.String() + " direct)")
		}
	default:
		b.WriteString(d.Kind.String())
	}
	if d.Rule != nil {
		b.WriteString(" (rule " + d.Rule.Text + ")")
	} else if d.Builtin != "" && d.Builtin != "default" {
		b.WriteString(" (" + d.Builtin + ")")
	}
	return b.String()
}

// RelayFlow is Relay counting into fl's halves: Up is what app sent, Down
// what it received (nil counts nothing). It is for flows that other
// packages carry (published ports).
func RelayFlow(ctx context.Context, app, upstream net.Conn, fl *flows.Flow) error {
	return relay(ctx, app, upstream, 0, fl)
}
