package route

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

// Table finds the first rule, in the order given, that a flow matches. It
// is safe for concurrent use: built once by NewTable, never modified.
type Table struct {
	rules  []*Rule
	v4, v6 trie
	// domains maps a domain to the span of domainRules that holds the
	// numbers of the rules with that domain condition, ascending. A rule
	// with both a domain and a CIDR is found here (and checked fully):
	// a flow without a name, the common case, then never looks at it.
	domains     map[string]span
	domainRules []int32
	// other holds the numbers of the rules with neither a CIDR nor a
	// domain, ascending.
	other []int32
}

type span struct{ start, end uint32 }

// indexed is one rule number under a key (a prefix or a domain), for
// sorting while the table is built.
type indexed[K any] struct {
	k K
	i int32
}

// NewTable indexes rules for Lookup; rule numbers are indexes into rules.
// It keeps rules (and the Rules) but does not modify them, and neither may
// the caller afterwards.
func NewTable(rules []*Rule) *Table {
	t := &Table{rules: rules}
	// Count first, so that every slice and the map are made once.
	nDomains, n4, n6 := 0, 0, 0
	for _, r := range rules {
		switch {
		case r.c.domain != "":
			nDomains++
		case r.c.prefix.IsValid() && r.c.prefix.Addr().Is4():
			n4++
		case r.c.prefix.IsValid():
			n6++
		}
	}
	prefixes := make([]indexed[netip.Prefix], 0, n4+n6)
	domains := make([]indexed[string], 0, nDomains)
	t.domains = make(map[string]span, nDomains)
	for i, r := range rules {
		switch {
		case r.c.domain != "":
			domains = append(domains, indexed[string]{r.c.domain, int32(i)})
		case r.c.prefix.IsValid():
			prefixes = append(prefixes, indexed[netip.Prefix]{r.c.prefix, int32(i)})
		default:
			t.other = append(t.other, int32(i))
		}
	}

	// Sorting by key, then rule number, keeps each key's rule numbers
	// ascending.
	slices.SortFunc(domains, func(a, b indexed[string]) int {
		return cmp.Or(strings.Compare(a.k, b.k), cmp.Compare(a.i, b.i))
	})
	t.domainRules = make([]int32, len(domains))
	for i, d := range domains {
		t.domainRules[i] = d.i
		s := t.domains[d.k]
		if s.end == 0 {
			s.start = uint32(i)
		}
		s.end = uint32(i + 1)
		t.domains[d.k] = s
	}

	slices.SortFunc(prefixes, func(a, b indexed[netip.Prefix]) int {
		return cmp.Or(a.k.Addr().Compare(b.k.Addr()), cmp.Compare(a.k.Bits(), b.k.Bits()), cmp.Compare(a.i, b.i))
	})
	// A trie of n prefixes has at most 2n nodes: each adds a leaf and at
	// most one joining node.
	t.v4, t.v6 = newTrie(2*n4, n4), newTrie(2*n6, n6)
	idx := make([]int32, 0, 8)
	for i := 0; i < len(prefixes); {
		p := prefixes[i].k
		idx = idx[:0]
		for ; i < len(prefixes) && prefixes[i].k == p; i++ {
			idx = append(idx, prefixes[i].i)
		}
		tr := &t.v6
		if p.Addr().Is4() {
			tr = &t.v4
		}
		tr.add(keyOf(p.Addr()), uint8(p.Bits()), idx)
	}
	return t
}

// Len returns the number of rules.
func (t *Table) Len() int { return len(t.rules) }

// Lookup returns the first rule that f matches, and its index in the list
// given to NewTable; ok is false if f matches none. It allocates nothing.
func (t *Table) Lookup(f *Flow) (rule *Rule, index int, ok bool) {
	p := newProbe(f)
	best := int32(len(t.rules))
	// The other rules first: they are few, and an early `all` or
	// protocol rule cuts everything after it short.
	for _, i := range t.other {
		if i >= best {
			break
		}
		if t.rules[i].matches(&p) {
			best = i
			break
		}
	}
	switch {
	case p.addr.Is4():
		best = t.v4.lookup(keyOf(p.addr), 32, best, t.rules, &p)
	case p.addr.Is6():
		best = t.v6.lookup(keyOf(p.addr), 128, best, t.rules, &p)
	}
	if p.name != "" {
		best = t.walkDomains(p.name, best, func(r *Rule) bool { return r.matches(&p) })
	}
	return t.result(best)
}

// LookupName returns the first rule that matches every flow to name,
// whatever its address, port and protocol: a rule whose only condition is
// a domain that name is under, or `all`. A DNS query for a name whose rule
// is block can then be answered NXDOMAIN. name is as Flow.Name.
func (t *Table) LookupName(name string) (rule *Rule, index int, ok bool) {
	name = strings.TrimSuffix(name, ".")
	best := int32(len(t.rules))
	for _, i := range t.other {
		if t.rules[i].c == (conds{}) {
			best = i
			break
		}
	}
	if name != "" {
		best = t.walkDomains(name, best, (*Rule).onlyDomain)
	}
	return t.result(best)
}

// walkDomains looks up name and each name above it ("a.b.c", "b.c", "c")
// and returns the smallest number below best of a rule found on the way
// for which ok holds, or best.
func (t *Table) walkDomains(name string, best int32, ok func(*Rule) bool) int32 {
	if len(t.domains) == 0 {
		return best
	}
	for s := name; ; {
		if sp, found := t.domains[s]; found {
			for _, i := range t.domainRules[sp.start:sp.end] {
				if i >= best {
					break
				}
				if ok(t.rules[i]) {
					best = i
					break
				}
			}
		}
		dot := strings.IndexByte(s, '.')
		if dot < 0 {
			return best
		}
		s = s[dot+1:]
	}
}

func (t *Table) result(best int32) (*Rule, int, bool) {
	if int(best) == len(t.rules) {
		return nil, -1, false
	}
	return t.rules[best], int(best), true
}
