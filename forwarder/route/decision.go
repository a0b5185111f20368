package route

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"

	"github.com/tungate/tungate/forwarder/proxy"
)

// Kind is what a Decision does with a flow.
type Kind uint8

const (
	// Refuse turns the flow away at once: a TCP reset, an ICMP port
	// unreachable for UDP, no reply to an echo request.
	Refuse Kind = iota
	// Answer serves the flow inside tungate (DNS), through
	// Decision.Server.
	Answer
	// Dial dials Decision.Dst through Decision.Upstream.
	Dial
)

// String names the kind for logs: "refuse", "answer" or "dial".
func (k Kind) String() string {
	switch k {
	case Refuse:
		return "refuse"
	case Answer:
		return "answer"
	case Dial:
		return "dial"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Decision is one flow's fate, made once by Router.Decide.
type Decision struct {
	// Kind says which of the fields below apply.
	Kind Kind
	// Upstream dials the flow (Kind Dial).
	Upstream *Upstream
	// Dst is what Upstream dials (Kind Dial): the destination the app
	// dialed, the address it is mapped to, or the name behind a fake
	// address.
	Dst Target
	// Server answers the flow in-process (Kind Answer).
	Server Server
	// Rule is the user's rule that decided, nil if a built-in one did;
	// Index is its position in the table.
	Rule  *Rule
	Index int
	// Builtin names the built-in rule that decided ("fake-dns",
	// "resolver", "host-loopback", "fake-unknown", "default", or
	// "no-udp" / "no-icmp" when the chosen upstream cannot carry the
	// flow); see the package doc for their order.
	Builtin string
}

// LogValue implements slog.LogValuer: the decision as the forwarder logs
// it at debug level for every flow.
func (d Decision) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, 6)
	attrs = append(attrs, slog.String("action", d.Kind.String()))
	if d.Upstream != nil {
		attrs = append(attrs, slog.String("upstream", d.Upstream.Name))
	}
	if d.Kind == Dial {
		attrs = append(attrs, slog.String("to", d.Dst.String()))
	}
	if d.Rule != nil {
		attrs = append(attrs, slog.String("rule", d.Rule.Text), slog.String("origin", d.Rule.Origin))
	} else {
		attrs = append(attrs, slog.String("rule", "builtin:"+d.Builtin))
	}
	return slog.GroupValue(attrs...)
}

// Target is what an upstream dials: an address, or a name and a port (the
// name behind a fake address, for a proxy or the host to resolve).
type Target struct {
	// Addr is the address and port; invalid when Name is set.
	Addr netip.AddrPort
	// Name is the host name; "" for an address.
	Name string
	// Port goes with Name.
	Port uint16
	// Fake is the fake address that Name stands for, invalid if none:
	// its family is the one the app looked the name up in, and so the
	// one a datagram to Name must go to (see network).
	Fake netip.Addr
}

// AddrTarget is a Target for an address.
func AddrTarget(ap netip.AddrPort) Target { return Target{Addr: ap} }

// NameTarget is a Target for a name.
func NameTarget(name string, port uint16) Target { return Target{Name: name, Port: port} }

// String is the target as "host:port", the form the standard library's
// dialers take; it is formatted once per dial, at the dialer.
func (t Target) String() string {
	if t.Name != "" {
		return net.JoinHostPort(t.Name, strconv.Itoa(int(t.Port)))
	}
	return t.Addr.String()
}

// network is base ("tcp" or "udp") with the address's family, so that an
// IPv4-mapped address is never dialed over the other family by accident.
// A name keeps the bare base, as it may have addresses of either family,
// except for UDP to a name behind a fake address: a datagram has no
// fallback to the other family, so it goes to the family the app asked
// for (an app that looked up A and got a fake IPv4 address may have a
// server that listens on IPv4 only).
func (t Target) network(base string) string {
	switch {
	case t.Name != "" && base == "udp" && t.Fake.Is4():
		return "udp4"
	case t.Name != "" && base == "udp" && t.Fake.Is6():
		return "udp6"
	case t.Name != "":
		return base
	case t.Addr.Addr().Is4():
		return base + "4"
	}
	return base + "6"
}

// Server serves flows inside tungate: a DNS resolver (forwarder/dns
// Resolver.Open).
type Server interface {
	// Open returns tungate's side of a flow to dst: a stream (TCP) or a
	// datagram conversation (UDP). It must not block.
	Open(dst netip.AddrPort, stream bool) (net.Conn, error)
}

// Upstream is one way out of tungate: host sockets (direct) or a chain of
// proxies. It is also a proxy.Dialer and proxy.PacketDialer, for what
// dials through it by string (the resolver's queries to real servers).
type Upstream struct {
	// Name is the upstream's name in rules and logs: "direct", "proxy"
	// (the default chain) or a chain's name.
	Name string
	// Dialer dials TCP. Required.
	Dialer proxy.Dialer
	// Packets carries UDP; nil means this upstream carries none (UDP
	// routed here is refused with ICMP port unreachable).
	Packets proxy.PacketDialer
	// Echo says that ICMP echo may leave this way (host sockets; a proxy
	// carries none).
	Echo bool
	// Proxied says the upstream goes through at least one proxy: its
	// failures are logged naming the hop.
	Proxied bool
}

var (
	_ proxy.Dialer       = (*Upstream)(nil)
	_ proxy.PacketDialer = (*Upstream)(nil)
)

// DialTCP dials dst over TCP.
func (u *Upstream) DialTCP(ctx context.Context, dst Target) (net.Conn, error) {
	return u.Dialer.DialContext(ctx, dst.network("tcp"), dst.String())
}

// DialUDP opens a UDP association with dst; without Packets the error
// matches proxy.ErrUDPUnsupported.
func (u *Upstream) DialUDP(ctx context.Context, dst Target) (net.Conn, error) {
	return u.DialPacket(ctx, dst.network("udp"), dst.String())
}

// DialContext implements proxy.Dialer.
func (u *Upstream) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return u.Dialer.DialContext(ctx, network, address)
}

// DialPacket implements proxy.PacketDialer.
func (u *Upstream) DialPacket(ctx context.Context, network, address string) (net.Conn, error) {
	if u.Packets == nil {
		return nil, fmt.Errorf("dial %s %s through %s: %w", network, address, u.Name, proxy.ErrUDPUnsupported)
	}
	return u.Packets.DialPacket(ctx, network, address)
}

// CanCarryUDP reports whether DialPacket can work.
func (u *Upstream) CanCarryUDP() bool { return u.Packets != nil }
