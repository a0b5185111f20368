package route

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// DNSPort is the port DNS is answered on.
const DNSPort = 53

// Upstream names with a meaning of their own in rules.
const (
	// ActionDirect dials through host sockets.
	ActionDirect = "direct"
	// ActionBlock refuses the flow.
	ActionBlock = "block"
	// ActionProxy dials through the default chain.
	ActionProxy = "proxy"
)

// IsActionName reports whether name is one of the actions that no chain
// may be named: direct, block or proxy.
func IsActionName(name string) bool {
	return name == ActionDirect || name == ActionBlock || name == ActionProxy
}

// Names tells the names behind fake addresses; a fakedns Resolver is one.
type Names interface {
	// Contains reports whether a is in the fake ranges.
	Contains(a netip.Addr) bool
	// Name returns the name behind a, if it is still known.
	Name(a netip.Addr) (string, bool)
}

// FakeDNS is the built-in rule of remote DNS: every DNS flow (TCP or UDP
// to port 53, whatever the address) is answered by Server, and flows to
// fake addresses carry the name behind them.
type FakeDNS struct {
	// Server answers the DNS flows. Required.
	Server Server
	// Names maps fake addresses back to names. Required.
	Names Names
}

// Resolver is the built-in rule of tungate's own resolver addresses (the
// resolver that an app's resolv.conf names): DNS there is answered by
// Server, and every other flow to them is refused.
type Resolver struct {
	// Addrs are the resolver's addresses.
	Addrs []netip.Addr
	// Server answers the DNS flows. Required.
	Server Server
}

// HostLoopback is the built-in rule that keeps apps off the host's own
// loopback and, if asked, maps some addresses onto it.
type HostLoopback struct {
	// Refuse refuses every flow that would reach the host's loopback
	// services if dialed from the host (ReachesHostLoopback).
	Refuse bool
	// Map maps addresses the app dials to host loopback addresses (same
	// port). Flows to them are refused unless Allow is set.
	Map map[netip.Addr]netip.Addr
	// Allow dials TCP and UDP to Map's addresses at their mapped address
	// through Via, never through a proxy (only this host has this
	// loopback); echo is refused.
	Allow bool
	// Via is the host-socket upstream that reaches the loopback (not
	// bound to an interface, which would cut it off). Required with
	// Allow.
	Via *Upstream
}

// Options configures a Router. Every built-in rule is off in the zero
// value; each one can be used in any mode.
type Options struct {
	// Direct is the host-socket upstream: the action "direct".
	// Required.
	Direct *Upstream
	// Default takes every flow no rule matches (the action "proxy");
	// nil means Direct.
	Default *Upstream
	// Chains are the named chains that rules may name as their action.
	Chains map[string]*Upstream
	// Rules are the user's rules (NewTable), tried in order; the first
	// match wins. nil means none.
	Rules *Table
	// FakeDNS, if set, answers all DNS and names fake addresses.
	FakeDNS *FakeDNS
	// Resolver, if set, answers DNS at tungate's resolver addresses.
	Resolver *Resolver
	// HostLoopback keeps flows off the host's loopback.
	HostLoopback HostLoopback
}

// ErrUnknownChain is returned by New for a rule whose action names no
// chain.
var ErrUnknownChain = errors.New("unknown chain")

// Router decides each new flow's fate: it is built once, from typed
// options, and never changes; Decide is safe for concurrent use and
// allocates nothing.
type Router struct {
	direct, def *Upstream
	table       *Table
	// ways[i] is where rule i sends its flows; nil for block.
	ways     []*Upstream
	fake     *FakeDNS
	resolver *Resolver
	loopback HostLoopback
}

// New checks the options and builds the Router. A rule naming an unknown
// chain fails with an error matching ErrUnknownChain that names the rule
// and where it came from.
func New(opts Options) (*Router, error) {
	if opts.Direct == nil {
		return nil, errors.New("route: Options.Direct is required")
	}
	if (opts.FakeDNS != nil && (opts.FakeDNS.Server == nil || opts.FakeDNS.Names == nil)) ||
		(opts.Resolver != nil && opts.Resolver.Server == nil) || (opts.HostLoopback.Allow && opts.HostLoopback.Via == nil) {
		return nil, errors.New("route: FakeDNS needs Server and Names, Resolver needs Server, HostLoopback.Allow needs Via")
	}
	r := &Router{direct: opts.Direct, def: opts.Default, fake: opts.FakeDNS, resolver: opts.Resolver, loopback: opts.HostLoopback}
	if r.def == nil {
		r.def = r.direct
	}
	for name := range opts.Chains {
		if IsActionName(name) {
			return nil, fmt.Errorf("chain %q: %q is an action; give the chain another name", name, name)
		}
	}
	r.table = opts.Rules
	if r.table == nil {
		r.table = NewTable(nil)
	}
	r.ways = make([]*Upstream, len(r.table.rules))
	for i, rule := range r.table.rules {
		switch rule.Action {
		case ActionBlock:
		case ActionDirect:
			r.ways[i] = r.direct
		case ActionProxy:
			r.ways[i] = r.def
		default:
			up, ok := opts.Chains[rule.Action]
			if !ok {
				return nil, fmt.Errorf("%s: %s: %w %q (define it with -x %s=URL)", rule.Origin, rule.Text, ErrUnknownChain, rule.Action, rule.Action)
			}
			r.ways[i] = up
		}
	}
	return r, nil
}

// Decide returns the fate of the new flow f. It fills in f.Name when f's
// destination is a fake address whose name is known. The built-in rules
// come first, in this order, then the user's rules, then the default:
//
//  1. fake DNS: TCP and UDP to port 53, any address, are answered;
//  2. the resolver's addresses: DNS is answered, everything else refused;
//  3. the host's loopback: refused; the mapped addresses dialed direct to
//     the loopback address, or refused without HostLoopback.Allow;
//  4. a fake address whose name is forgotten: refused;
//  5. the user's rules, first match: block refuses, any other action
//     picks its upstream;
//  6. no match: the default upstream.
//
// Last, a flow the chosen upstream cannot carry is refused: UDP where it
// has no Packets, echo where Echo is off, and echo to a name.
func (r *Router) Decide(f *Flow) Decision {
	dst := f.Dst.Addr().Unmap()
	if r.fake != nil && f.Proto != ICMP && f.Dst.Port() == DNSPort {
		return Decision{Kind: Answer, Server: r.fake.Server, Builtin: "fake-dns"}
	}
	if r.resolver != nil && slices.Contains(r.resolver.Addrs, dst) {
		if f.Proto != ICMP && f.Dst.Port() == DNSPort {
			return Decision{Kind: Answer, Server: r.resolver.Server, Builtin: "resolver"}
		}
		return Decision{Kind: Refuse, Builtin: "resolver"}
	}
	if d, ok := r.hostLoopback(f, dst); ok {
		return d
	}
	if r.fake != nil && r.fake.Names.Contains(dst) {
		name, ok := r.fake.Names.Name(dst)
		if !ok {
			return Decision{Kind: Refuse, Builtin: "fake-unknown"}
		}
		f.Name = name
	}
	d := Decision{Kind: Dial, Upstream: r.def, Builtin: "default", Index: -1}
	if rule, i, ok := r.table.Lookup(f); ok {
		d = Decision{Kind: Dial, Upstream: r.ways[i], Rule: rule, Index: i}
		if d.Upstream == nil {
			d.Kind = Refuse
			return d
		}
	}
	d.Dst = AddrTarget(f.Dst)
	if f.Name != "" {
		d.Dst = NameTarget(f.Name, f.Dst.Port())
		d.Dst.Fake = dst
	}
	return carried(f, d)
}

// hostLoopback applies the built-in host-loopback rule.
func (r *Router) hostLoopback(f *Flow, dst netip.Addr) (Decision, bool) {
	lb := &r.loopback
	if lb.Refuse && ReachesHostLoopback(dst) {
		return Decision{Kind: Refuse, Builtin: "host-loopback"}, true
	}
	to, ok := lb.Map[dst]
	if !ok {
		return Decision{}, false
	}
	if !lb.Allow || f.Proto == ICMP {
		return Decision{Kind: Refuse, Builtin: "host-loopback"}, true
	}
	d := Decision{Kind: Dial, Upstream: lb.Via, Dst: AddrTarget(netip.AddrPortFrom(to, f.Dst.Port())), Builtin: "host-loopback"}
	return carried(f, d), true
}

// carried refuses a Dial decision whose upstream cannot carry f.
func carried(f *Flow, d Decision) Decision {
	switch {
	case f.Proto == UDP && d.Upstream.Packets == nil:
		d.Kind, d.Builtin = Refuse, "no-udp"
	case f.Proto == ICMP && (!d.Upstream.Echo || d.Dst.Name != ""):
		d.Kind, d.Builtin = Refuse, "no-icmp"
	}
	return d
}

// BlocksName reports whether rules send every flow to name to block, so
// that a DNS query for it can be answered NXDOMAIN. t is the table of the
// user's rules; a nil t blocks nothing.
func BlocksName(t *Table, name string) bool {
	if t == nil {
		return false
	}
	rule, _, ok := t.LookupName(name)
	return ok && rule.Action == ActionBlock
}

// ReachesHostLoopback reports whether dialing dst from the host would reach
// the host's own loopback services: all of 127.0.0.0/8 and ::1, the
// unspecified addresses 0.0.0.0 and :: (which Linux connects to loopback),
// the rest of 0.0.0.0/8, and all of these in IPv4-mapped IPv6 form
// (::ffff:127.0.0.1).
func ReachesHostLoopback(dst netip.Addr) bool {
	a := dst.Unmap()
	if a.IsLoopback() || a.IsUnspecified() {
		return true
	}
	return a.Is4() && a.As4()[0] == 0
}
