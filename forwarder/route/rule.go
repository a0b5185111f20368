package route

import (
	"net/netip"
	"strconv"
	"strings"
)

// Proto is a flow's transport protocol.
type Proto uint8

// The protocols a flow can have; the zero Proto is none of them.
const (
	TCP Proto = iota + 1
	UDP
	ICMP
)

// String returns the protocol's name as written in rules: "tcp", "udp" or
// "icmp".
func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case ICMP:
		return "icmp"
	}
	return "proto(" + strconv.Itoa(int(p)) + ")"
}

// Flow describes one new flow, as the forwarder sees it.
type Flow struct {
	// Proto is the flow's transport protocol.
	Proto Proto
	// Src is the app's address and port.
	Src netip.AddrPort
	// Dst is the destination the app dialed (port 0 for ICMP).
	Dst netip.AddrPort
	// Name is the name behind a fake address; "" when none is known.
	// Lower case, ASCII (IDNs in punycode); a trailing dot is ignored.
	Name string
}

// Rule is one parsed MATCH=ACTION. Make one with ParseRule or ParseRules;
// it is never modified afterwards.
type Rule struct {
	// Text is the rule as written (without surrounding blanks or a
	// comment), for logs and errors.
	Text string
	// Origin is where the rule came from: "--route" or "FILE:LINE".
	Origin string
	// Action is "direct", "block", "proxy", or the name of a chain.
	Action string

	c conds
}

// conds are a rule's conditions; the zero value matches every flow. It is
// comparable, so that tests can check a parse against another.
type conds struct {
	// protos is a set of 1<<Proto; 0 means any protocol. A set of all
	// three is stored as 0.
	protos uint8
	// portLo and portHi bound the destination port; portHi 0 means any.
	portLo, portHi uint16
	// prefix is the CIDR condition, masked and unmapped; invalid means
	// none.
	prefix netip.Prefix
	// domain is the domain condition, lower case without a trailing dot;
	// "" means none.
	domain string
}

const allProtos = 1<<TCP | 1<<UDP | 1<<ICMP

// NeedsName reports whether r has a domain: condition, so that it can only
// match flows whose name is known.
func (r *Rule) NeedsName() bool { return r.c.domain != "" }

// probe is a flow prepared for matching: the destination unmapped and
// without zone, the name without a trailing dot.
type probe struct {
	proto Proto
	port  uint16
	addr  netip.Addr
	name  string
}

func newProbe(f *Flow) probe {
	return probe{
		proto: f.Proto,
		port:  f.Dst.Port(),
		addr:  f.Dst.Addr().Unmap().WithZone(""),
		name:  strings.TrimSuffix(f.Name, "."),
	}
}

// matches reports whether every condition of r holds for p.
func (r *Rule) matches(p *probe) bool {
	c := &r.c
	if c.protos != 0 && c.protos&(1<<p.proto) == 0 {
		return false
	}
	if c.portHi != 0 && (p.proto == ICMP || p.port < c.portLo || p.port > c.portHi) {
		return false
	}
	if c.prefix.IsValid() && !c.prefix.Contains(p.addr) {
		return false
	}
	if c.domain != "" && !underDomain(p.name, c.domain) {
		return false
	}
	return true
}

// onlyDomain reports whether r's only condition is a domain (or it has
// none), so that it matches every flow to a name under that domain.
func (r *Rule) onlyDomain() bool {
	c := &r.c
	return c.protos == 0 && c.portHi == 0 && !c.prefix.IsValid()
}

// underDomain reports whether name is domain or a name under it, by whole
// labels.
func underDomain(name, domain string) bool {
	if !strings.HasSuffix(name, domain) {
		return false
	}
	n := len(name) - len(domain)
	return n == 0 || name[n-1] == '.'
}

// canonical writes r's conditions in a fixed form that parses back to the
// same conditions.
func (r *Rule) canonical() string {
	var parts []string
	for p := TCP; p <= ICMP; p++ {
		if r.c.protos&(1<<p) != 0 {
			parts = append(parts, p.String())
		}
	}
	if r.c.prefix.IsValid() {
		parts = append(parts, r.c.prefix.String())
	}
	if r.c.domain != "" {
		parts = append(parts, "domain:"+r.c.domain)
	}
	if r.c.portHi != 0 {
		s := "port:" + strconv.Itoa(int(r.c.portLo))
		if r.c.portHi != r.c.portLo {
			s += "-" + strconv.Itoa(int(r.c.portHi))
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		parts = append(parts, "all")
	}
	return strings.Join(parts, ",") + "=" + r.Action
}
