package route

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// The size of the large lists the issue asks to be fast: this many CIDR
// rules and as many domain rules.
const largeN = 100_000

// largeList is a generated rules file of largeN CIDR rules (nine in ten
// IPv4 /12 to /28, the rest IPv6 /32 to /64) interleaved with largeN
// domain rules, and flows that hit each kind or miss. 198.18.0.0/15 (the
// fake addresses) and the name "unknown.test" are left out so that misses
// miss.
type largeList struct {
	text               string
	cidrHit, domainHit []*Flow
	miss               *Flow
}

var large = sync.OnceValue(func() *largeList {
	rng := rand.New(rand.NewPCG(10, 10))
	tlds := []string{"com", "net", "org", "io", "de", "co.uk", "example", "com.br"}
	var b strings.Builder
	l := &largeList{}
	for i := range largeN {
		var p netip.Prefix
		var host netip.Addr
		if i%10 != 0 {
			var a [4]byte
			for {
				a = [4]byte{byte(1 + rng.IntN(223)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}
				if a[0] != 127 && (a[0] != 198 || a[1]&0xfe != 18) {
					break
				}
			}
			host = netip.AddrFrom4(a)
			p = netip.PrefixFrom(host, 12+rng.IntN(17)).Masked()
		} else {
			var a [16]byte
			a[0], a[1] = 0x20, 0x01
			for j := 2; j < 16; j++ {
				a[j] = byte(rng.IntN(256))
			}
			host = netip.AddrFrom16(a)
			p = netip.PrefixFrom(host, 32+rng.IntN(33)).Masked()
		}
		fmt.Fprintf(&b, "%s=direct\n", p)
		name := fmt.Sprintf("%c%x-%d.%s", 'a'+rune(rng.IntN(26)), rng.Uint32(), i, tlds[rng.IntN(len(tlds))])
		fmt.Fprintf(&b, "domain:%s=corp # an ad server\n", name)
		if i%1000 == 0 {
			l.cidrHit = append(l.cidrHit, &Flow{Proto: TCP, Dst: netip.AddrPortFrom(host, 443)})
			l.domainHit = append(l.domainHit, &Flow{Proto: TCP, Dst: netip.MustParseAddrPort("198.18.3.4:443"), Name: "www.cdn." + name})
		}
	}
	l.text = b.String()
	l.miss = &Flow{Proto: TCP, Dst: netip.MustParseAddrPort("198.18.3.4:443"), Name: "www.unknown.test"}
	return l
})

func largeTable(tb testing.TB) *Table {
	tb.Helper()
	rules, err := ParseRules(strings.NewReader(large().text), "large.txt")
	if err != nil {
		tb.Fatal(err)
	}
	if len(rules) != 2*largeN {
		tb.Fatalf("%d rules, want %d", len(rules), 2*largeN)
	}
	return NewTable(rules)
}

func BenchmarkLookup(b *testing.B) {
	tab := largeTable(b)
	l := large()
	for _, bc := range []struct {
		name  string
		flows []*Flow
		hit   bool
	}{
		{"cidr-hit", l.cidrHit, true},
		{"domain-hit", l.domainHit, true},
		{"miss", []*Flow{l.miss}, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for _, f := range bc.flows {
				if _, _, ok := tab.Lookup(f); ok != bc.hit {
					b.Fatalf("Lookup(%+v) ok = %v, want %v", f, ok, bc.hit)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tab.Lookup(bc.flows[i%len(bc.flows)])
				i++
			}
		})
	}
}

// BenchmarkLoad parses the 200,000-line file and indexes it, reporting the
// heap the result keeps per rule.
func BenchmarkLoad(b *testing.B) {
	text := large().text
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		rules, err := ParseRules(strings.NewReader(text), "large.txt")
		if err != nil {
			b.Fatal(err)
		}
		NewTable(rules)
	}
	rulesB, tableB := largeMemory(b)
	b.ReportMetric(float64(rulesB)/(2*largeN), "rules-B/rule")
	b.ReportMetric(float64(tableB)/(2*largeN), "index-B/rule")
}

// largeMemory measures the heap kept by the parsed rules (with the file
// text they point into) and, separately, by the Table's indexes.
func largeMemory(tb testing.TB) (rules, index uint64) {
	text := []byte(large().text)
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	rs, err := ParseRules(strings.NewReader(string(text)), "large.txt")
	if err != nil {
		tb.Fatal(err)
	}
	parsed := heap()
	tab := NewTable(rs)
	indexed := heap()
	runtime.KeepAlive(tab)
	return parsed - before, indexed - parsed
}

func TestLargeTable(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a table of 200,000 rules")
	}
	rules, index := largeMemory(t)
	t.Logf("%d rules: %d B parsed rules (%.0f B/rule, text included), %d B indexes (%.0f B/rule)",
		2*largeN, rules, float64(rules)/(2*largeN), index, float64(index)/(2*largeN))
	tab := largeTable(t)
	l := large()
	for _, f := range append(l.cidrHit, l.domainHit...) {
		if _, _, ok := tab.Lookup(f); !ok {
			t.Errorf("Lookup(%+v) found no rule", f)
		}
	}
	if r, _, ok := tab.Lookup(l.miss); ok {
		t.Errorf("Lookup(%+v) = %q, want no rule", l.miss, r.Text)
	}
	for _, f := range []*Flow{l.cidrHit[3], l.domainHit[3], l.miss} {
		if n := testing.AllocsPerRun(100, func() { tab.Lookup(f) }); n != 0 {
			t.Errorf("Lookup(%+v) allocates %v times", f, n)
		}
	}
}
