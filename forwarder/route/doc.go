// Package route decides each flow's fate from the --route MATCH=ACTION
// rules: it parses the rules (ParseRule for one --route flag, ParseRules for
// a --routes file) and finds, for a new flow, the first rule in the order
// given that the flow matches (Table.Lookup). Rule order decides, never
// prefix length: 10.0.0.0/8=direct listed before 10.1.0.0/16=block wins for
// 10.1.2.3.
//
// # Deciding
//
// Router.Decide is the one place a flow's fate is made: the forwarder
// asks it once per new flow and only carries out the Decision it returns
// (refuse, answer in-process, or dial a Target through an Upstream). A
// Router is built once by New from typed Options and never changes. Before
// the user's rules it applies the built-in rules that Options switches on,
// in this order: fake DNS (every TCP or UDP flow to port 53 is answered,
// FakeDNS), tungate's resolver addresses (DNS there answered, anything
// else refused, Resolver), the host's loopback (refused in every form,
// with some addresses mapped onto it when allowed, HostLoopback), and a
// fake address whose name is forgotten (refused). A flow to a fake
// address carries the name behind it, as Flow.Name and as the Target's
// Name (with the fake address, whose family UDP keeps). Last, a flow the
// chosen upstream cannot carry (UDP without Packets, echo through a proxy
// or to a name) is refused. Decision.Builtin or Decision.Rule says which
// rule decided, for the debug log.
//
// # Rules
//
// A rule is MATCH=ACTION, split at the first '='. MATCH is one or more
// conditions joined by ',', all of which must hold:
//
//   - CIDR: 10.0.0.0/8, fd00::/8, or a bare address (a /32 or /128). It
//     matches the destination address the app dialed. An IPv4-mapped IPv6
//     destination (::ffff:10.1.2.3) is unmapped first, so it matches IPv4
//     CIDRs; an IPv4-mapped CIDR (::ffff:10.0.0.0/104) is unmapped when
//     parsed, likewise. A destination's zone (fe80::1%eth0) is ignored.
//     Host bits must be clear (10.1.2.3/8 is refused, with the two ways to
//     say what was probably meant).
//   - domain:NAME: NAME and every name under it, by whole labels:
//     domain:corp.example matches corp.example and a.b.corp.example, never
//     badcorp.example. Case is ignored and a trailing dot dropped; an IDN is
//     written in punycode (xn--...); wildcards are not supported, since the
//     plain name already covers everything under it. It matches the name
//     behind a fake address; a flow without a name never matches it.
//   - port:N or port:N-M: the destination port, 1-65535, N <= M. An ICMP
//     flow has no port and never matches.
//   - tcp, udp, icmp: the transport protocol. Several in one rule are
//     ORed: tcp,udp matches both.
//   - all: every flow; it stands alone.
//
// A rule holds at most one CIDR, one domain and one port condition: since
// conditions are ANDed, two of a kind would mean their intersection, which
// is almost never what the writer wanted; one rule each says it.
//
// ACTION is direct, block, proxy (the default chain) or the name of a chain
// (letters, digits, '-', '_', '.'); whether such a chain exists is checked
// by the caller, which knows the chains.
//
// A rules file holds one rule per line; '#' starts a comment (a whole line
// or the end of one) and blank lines are ignored.
//
// # Lookup
//
// A Table indexes the rules so that a lookup costs a few dozen steps however
// long the list: a path-compressed binary trie per address family for rules
// with a CIDR, a map from domain name to rules for rules with a domain
// (walked label by label up the flow's name), and a plain list for the rest.
// Each index keeps rule numbers in ascending order, and a lookup keeps the
// smallest matching number found so far and skips everything after it.
// Lookup allocates nothing.
package route
