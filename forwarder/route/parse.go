package route

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// ErrBadRule is wrapped by every error about a rule's text, from ParseRule
// and ParseRules: a usage error of whoever wrote the rule.
var ErrBadRule = errors.New("bad route rule")

// ruleError is a bad rule: where it came from, its text and what is wrong.
type ruleError struct {
	origin, text, problem string
}

func (e *ruleError) Error() string {
	if strings.HasPrefix(e.origin, "-") {
		// A flag: `--route "x=y": ...` reads better than `--route: route ...`.
		return fmt.Sprintf("%s %q: %s", e.origin, e.text, e.problem)
	}
	if e.origin == "" {
		return fmt.Sprintf("route %q: %s", e.text, e.problem)
	}
	return fmt.Sprintf("%s: route %q: %s", e.origin, e.text, e.problem)
}

func (e *ruleError) Unwrap() error { return ErrBadRule }

// The forms named in errors.
const (
	wantRule      = "want MATCH=ACTION such as 10.0.0.0/8=direct"
	wantCondition = "want a CIDR, domain:NAME, port:N, port:N-M, tcp, udp, icmp or all"
	wantAction    = "want direct, block, proxy or a chain name (letters, digits, '-', '_', '.')"
	wantPort      = "want port:N or port:N-M with 1 <= N <= M <= 65535, such as port:443 or port:8000-8999"
)

// ParseRule parses one rule, MATCH=ACTION. origin, such as "--route" or
// "FILE:LINE", is copied into Rule.Origin and named in errors. Blanks
// around the rule, its conditions and its action are ignored. Errors wrap
// ErrBadRule.
func ParseRule(text, origin string) (*Rule, error) {
	text = strings.TrimSpace(text)
	bad := func(format string, args ...any) error {
		return &ruleError{origin: origin, text: text, problem: fmt.Sprintf(format, args...)}
	}
	if text == "" {
		return nil, bad("empty rule: %s", wantRule)
	}
	match, action, ok := strings.Cut(text, "=")
	if !ok {
		return nil, bad("no '=': %s", wantRule)
	}
	match, action = strings.TrimSpace(match), strings.TrimSpace(action)
	if match == "" {
		return nil, bad("empty MATCH before '=': %s", wantRule)
	}
	if action == "" {
		return nil, bad("empty ACTION after '=': %s", wantAction)
	}
	if !validAction(action) {
		return nil, bad("bad action %q: %s", action, wantAction)
	}
	c, problem := parseConds(match)
	if problem != "" {
		return nil, bad("%s", problem)
	}
	return &Rule{Text: text, Origin: origin, Action: action, c: c}, nil
}

func validAction(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i]) && s[i] != '.' {
			return false
		}
	}
	return true
}

// isNameByte reports whether b may appear in a chain name or a domain
// label.
func isNameByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '_'
}

// parseConds parses MATCH, returning the conditions or what is wrong.
func parseConds(match string) (conds, string) {
	var c conds
	all := false
	n := 0
	for rest := match; ; {
		cond, tail, more := strings.Cut(rest, ",")
		rest = tail
		cond = strings.TrimSpace(cond)
		n++
		if problem := c.add(cond, &all); problem != "" {
			return conds{}, problem
		}
		if !more {
			break
		}
	}
	if all && n > 1 {
		return conds{}, "all matches every flow and stands alone: drop it or the other conditions"
	}
	if c.protos == allProtos {
		c.protos = 0
	}
	return c, ""
}

// add parses one condition into c, returning what is wrong with it.
func (c *conds) add(cond string, all *bool) string {
	key, val, hasColon := strings.Cut(cond, ":")
	key, val = strings.TrimSpace(key), strings.TrimSpace(val)
	switch {
	case cond == "":
		return "empty condition (two ',' in a row, or one at an end): " + wantCondition
	case strings.EqualFold(cond, "all"):
		*all = true
	case strings.EqualFold(cond, "tcp"):
		c.protos |= 1 << TCP
	case strings.EqualFold(cond, "udp"):
		c.protos |= 1 << UDP
	case strings.EqualFold(cond, "icmp"):
		c.protos |= 1 << ICMP
	case hasColon && strings.EqualFold(key, "domain"):
		if c.domain != "" {
			return "two domain conditions: conditions are ANDed, so write one rule per domain"
		}
		d, problem := parseDomain(val)
		if problem != "" {
			return problem
		}
		c.domain = d
	case hasColon && strings.EqualFold(key, "port"):
		if c.portHi != 0 {
			return "two port conditions: conditions are ANDed, so write one rule per port or range"
		}
		lo, hi, ok := parsePorts(val)
		if !ok {
			return fmt.Sprintf("bad port %q: %s", cond, wantPort)
		}
		c.portLo, c.portHi = lo, hi
	case looksLikeAddr(cond):
		if c.prefix.IsValid() {
			return "two CIDRs: conditions are ANDed, so write one rule per CIDR"
		}
		p, problem := parseCIDR(cond)
		if problem != "" {
			return problem
		}
		c.prefix = p
	case strings.Contains(cond, ".") && validDomainChars(cond):
		return fmt.Sprintf("unknown condition %q: for a name, write domain:%s", cond, cond)
	default:
		return fmt.Sprintf("unknown condition %q: %s", cond, wantCondition)
	}
	return ""
}

// looksLikeAddr tells a CIDR or address (meant, if maybe mistyped) from
// other conditions: IPv4 starts with a digit, IPv6 has a ':' after hex
// digits (or none), a CIDR has a '/'.
func looksLikeAddr(s string) bool {
	if s[0] >= '0' && s[0] <= '9' || strings.Contains(s, "/") {
		return true
	}
	head, _, colon := strings.Cut(s, ":")
	return colon && strings.Trim(head, "0123456789abcdefABCDEF") == ""
}

func parseCIDR(s string) (netip.Prefix, string) {
	want := "want ADDR/BITS such as 10.0.0.0/8, or an address"
	if strings.Contains(s, ":") {
		want = "want ADDR/BITS such as fd00::/8, or an address"
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, fmt.Sprintf("bad CIDR %q: %s", s, want)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return p, fmt.Sprintf("bad CIDR %q: %s", s, want)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if m := p.Masked(); m != p {
		return p, fmt.Sprintf("bad CIDR %q: host bits set; write %s for the network, or %s for the one address",
			s, m, netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
	}
	// Destinations are unmapped before matching, so a mapped CIDR is too.
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p, ""
}

func parsePorts(s string) (lo, hi uint16, ok bool) {
	a, b, isRange := strings.Cut(s, "-")
	lo, ok = parsePort(a)
	if !ok {
		return 0, 0, false
	}
	hi = lo
	if isRange {
		if hi, ok = parsePort(b); !ok || hi < lo {
			return 0, 0, false
		}
	}
	return lo, hi, true
}

func parsePort(s string) (uint16, bool) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false // ParseUint takes neither '+' nor blanks; be explicit
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint16(n), true
}

// The longest name and label DNS can carry.
const (
	maxName  = 253
	maxLabel = 63
)

// parseDomain checks and normalizes the NAME of domain:NAME.
func parseDomain(name string) (string, string) {
	orig := name
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return "", "empty domain name: want domain:NAME such as domain:example.com"
	}
	if strings.Contains(name, "*") {
		if base := strings.TrimLeft(name, "*."); base != "" && !strings.Contains(base, "*") {
			return "", fmt.Sprintf("wildcard in domain %q is not supported: write domain:%s (it matches every name under it)", orig, base)
		}
		return "", fmt.Sprintf("wildcard in domain %q is not supported: write the name itself (domain:NAME matches every name under it)", orig)
	}
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			return "", fmt.Sprintf("non-ASCII domain %q: write an IDN in its punycode (xn--) form, such as domain:xn--bcher-kva.example", orig)
		}
	}
	if !validDomainChars(name) {
		return "", fmt.Sprintf("bad domain %q: want labels of letters, digits, '-' and '_' joined by '.', such as domain:example.com", orig)
	}
	if len(name) > maxName {
		return "", fmt.Sprintf("domain %q is longer than %d bytes, the most DNS allows", orig, maxName)
	}
	for rest := name; ; {
		label, tail, more := strings.Cut(rest, ".")
		if label == "" {
			return "", fmt.Sprintf("empty label in domain %q: want labels joined by single dots, such as domain:example.com", orig)
		}
		if len(label) > maxLabel {
			return "", fmt.Sprintf("label %q of domain %q is longer than %d bytes, the most DNS allows", label, orig, maxLabel)
		}
		if !more {
			break
		}
		rest = tail
	}
	return strings.ToLower(name), ""
}

func validDomainChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i]) && s[i] != '.' {
			return false
		}
	}
	return true
}

// ParseRules reads a rules file: one rule per line, '#' starts a comment
// (a whole line or the end of one), blank lines are ignored. Each rule's
// Origin is "NAME:LINE", and errors name it. It stops at the first bad
// rule; errors about rules wrap ErrBadRule.
func ParseRules(r io.Reader, name string) ([]*Rule, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading rules %s: %w", name, err)
	}
	// One string for the whole file: every Rule.Text points into it
	// instead of holding its own copy.
	text := string(data)
	rules := make([]*Rule, 0, strings.Count(text, "\n")+1)
	var origin []byte
	for line := 1; text != ""; line++ {
		var l string
		l, text, _ = strings.Cut(text, "\n")
		l, _, _ = strings.Cut(l, "#")
		if strings.TrimSpace(l) == "" {
			continue
		}
		origin = strconv.AppendInt(append(append(origin[:0], name...), ':'), int64(line), 10)
		rule, err := ParseRule(l, string(origin))
		if err != nil {
			return nil, err
		}
		rules = append(rules, rule)
	}
	return slices.Clip(rules), nil
}
