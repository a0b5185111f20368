package route

import "testing"

// BenchmarkDecide100k decides flows against the 100,000 CIDR and 100,000
// domain rules of BenchmarkLookup, through the whole router: built-in
// rules, table, upstream.
func BenchmarkDecide100k(b *testing.B) {
	x := newRouterFixture(b, "")
	r, err := New(Options{Direct: x.direct, Default: x.def, Chains: map[string]*Upstream{"corp": x.corp},
		Rules: largeTable(b), FakeDNS: &FakeDNS{Server: x.fake, Names: fakeNames{}}})
	if err != nil {
		b.Fatal(err)
	}
	l := large()
	for _, bc := range []struct {
		name  string
		flows []*Flow
	}{
		{"cidr-hit", l.cidrHit},
		{"domain-hit", l.domainHit},
		{"miss", []*Flow{l.miss}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				f := *bc.flows[i%len(bc.flows)]
				r.Decide(&f)
				i++
			}
		})
	}
}
