package route

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// mustRules parses rules written one per line.
func mustRules(t testing.TB, text string) []*Rule {
	t.Helper()
	rules, err := ParseRules(strings.NewReader(text), "test")
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

func flow(proto Proto, dst, name string) *Flow {
	return &Flow{Proto: proto, Src: netip.MustParseAddrPort("10.99.0.1:40000"), Dst: netip.MustParseAddrPort(dst), Name: name}
}

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules string
		flow  *Flow
		want  int // the index of the matching rule; -1 for none
	}{
		{"order /8 first, in both", "10.0.0.0/8=direct\n10.1.2.0/24=block", flow(TCP, "10.1.2.3:80", ""), 0},
		{"order /8 first, in /8 only", "10.0.0.0/8=direct\n10.1.2.0/24=block", flow(TCP, "10.9.9.9:80", ""), 0},
		{"order /24 first, in both", "10.1.2.0/24=block\n10.0.0.0/8=direct", flow(TCP, "10.1.2.3:80", ""), 0},
		{"order /24 first, in /8 only", "10.1.2.0/24=block\n10.0.0.0/8=direct", flow(TCP, "10.9.9.9:80", ""), 1},
		{"order /24 first, outside both", "10.1.2.0/24=block\n10.0.0.0/8=direct", flow(TCP, "11.0.0.1:80", ""), -1},
		{"same CIDR twice", "10.0.0.0/8,udp=block\n10.0.0.0/8=direct", flow(TCP, "10.1.1.1:80", ""), 1},
		{"bare address", "10.1.2.3=block", flow(TCP, "10.1.2.3:1", ""), 0},
		{"bare address, neighbour", "10.1.2.3=block", flow(TCP, "10.1.2.4:1", ""), -1},
		{"default route v4", "0.0.0.0/0=proxy", flow(UDP, "192.0.2.1:53", ""), 0},
		{"v4 rule, v6 flow", "0.0.0.0/0=proxy", flow(TCP, "[2001:db8::1]:443", ""), -1},
		{"v6 CIDR", "fd00::/8=direct", flow(TCP, "[fd12::1]:22", ""), 0},
		{"v6 CIDR, outside", "fd00::/8=direct", flow(TCP, "[fe80::1]:22", ""), -1},
		{"v6 zone ignored", "fe80::/10=direct", &Flow{Proto: TCP, Dst: netip.MustParseAddrPort("[fe80::1%eth0]:22")}, 0},
		{"v6 /128 after /64", "2001:db8::/64=a\n2001:db8::5=b", flow(TCP, "[2001:db8::5]:1", ""), 0},
		{"v6 deep bits", "2001:db8::/127=a", flow(TCP, "[2001:db8::1]:1", ""), 0},
		{"v6 deep bits, outside", "2001:db8::/127=a", flow(TCP, "[2001:db8::2]:1", ""), -1},
		{"IPv4-mapped dst", "10.0.0.0/8=direct", flow(TCP, "[::ffff:10.1.2.3]:80", ""), 0},
		{"IPv4-mapped rule", "::ffff:10.0.0.0/104=direct", flow(TCP, "10.1.2.3:80", ""), 0},
		{"domain exact", "domain:example.com=block", flow(TCP, "198.18.0.1:443", "example.com"), 0},
		{"domain under", "domain:example.com=block", flow(TCP, "198.18.0.1:443", "a.b.example.com"), 0},
		{"domain not a label suffix", "domain:example.com=block", flow(TCP, "198.18.0.1:443", "badexample.com"), -1},
		{"domain parent only", "domain:a.example.com=block", flow(TCP, "198.18.0.1:443", "example.com"), -1},
		{"domain tld", "domain:com=block", flow(TCP, "198.18.0.1:443", "a.com"), 0},
		{"domain tld, other", "domain:com=block", flow(TCP, "198.18.0.1:443", "a.org"), -1},
		{"domain trailing dot in rule", "domain:example.com.=block", flow(TCP, "198.18.0.1:443", "www.example.com"), 0},
		{"domain trailing dot in flow", "domain:example.com=block", flow(TCP, "198.18.0.1:443", "www.example.com."), 0},
		{"domain case in rule", "domain:EXAMPLE.Com=block", flow(TCP, "198.18.0.1:443", "www.example.com"), 0},
		{"domain punycode", "domain:xn--bcher-kva.example=block", flow(TCP, "198.18.0.1:443", "www.xn--bcher-kva.example"), 0},
		{"domain, no name", "domain:example.com=block", flow(TCP, "93.184.215.14:443", ""), -1},
		{"domain order", "domain:example.com=a\ndomain:www.example.com=b", flow(TCP, "198.18.0.1:443", "www.example.com"), 0},
		{"domain order, deeper first", "domain:www.example.com=b\ndomain:example.com=a", flow(TCP, "198.18.0.1:443", "www.example.com"), 0},
		{"domain and CIDR, both hold", "domain:example.com,198.18.0.0/15=a", flow(TCP, "198.18.0.1:443", "example.com"), 0},
		{"domain and CIDR, address not", "domain:example.com,10.0.0.0/8=a", flow(TCP, "198.18.0.1:443", "example.com"), -1},
		{"domain and CIDR, name not", "domain:example.com,198.18.0.0/15=a", flow(TCP, "198.18.0.1:443", "example.org"), -1},
		{"CIDR before domain", "198.18.0.0/15=a\ndomain:example.com=b", flow(TCP, "198.18.0.1:443", "example.com"), 0},
		{"domain before CIDR", "domain:example.com=b\n198.18.0.0/15=a", flow(TCP, "198.18.0.1:443", "example.com"), 0},
		{"port", "port:443=a", flow(TCP, "192.0.2.1:443", ""), 0},
		{"port, other", "port:443=a", flow(TCP, "192.0.2.1:80", ""), -1},
		{"port range low end", "port:8000-8999=a", flow(UDP, "192.0.2.1:8000", ""), 0},
		{"port range high end", "port:8000-8999=a", flow(UDP, "192.0.2.1:8999", ""), 0},
		{"port range above", "port:8000-8999=a", flow(UDP, "192.0.2.1:9000", ""), -1},
		{"port range below", "port:8000-8999=a", flow(UDP, "192.0.2.1:7999", ""), -1},
		{"port, ICMP never", "port:1-65535=a", flow(ICMP, "192.0.2.1:0", ""), -1},
		{"port, ICMP with an id", "port:1-65535=a", flow(ICMP, "192.0.2.1:7", ""), -1},
		{"tcp", "tcp=a", flow(TCP, "192.0.2.1:1", ""), 0},
		{"tcp, udp flow", "tcp=a", flow(UDP, "192.0.2.1:1", ""), -1},
		{"tcp,udp ORed, udp", "tcp,udp=a", flow(UDP, "192.0.2.1:1", ""), 0},
		{"tcp,udp ORed, icmp", "tcp,udp=a", flow(ICMP, "192.0.2.1:0", ""), -1},
		{"icmp", "icmp=a", flow(ICMP, "192.0.2.1:0", ""), 0},
		{"protocol and port and CIDR", "udp,port:53,10.0.0.0/8=a\nall=b", flow(UDP, "10.0.0.53:53", ""), 0},
		{"protocol and port and CIDR, tcp", "udp,port:53,10.0.0.0/8=a\nall=b", flow(TCP, "10.0.0.53:53", ""), 1},
		{"all", "all=block", flow(ICMP, "[2001:db8::1]:0", ""), 0},
		{"all after", "10.0.0.0/8=a\nall=b", flow(TCP, "10.0.0.1:1", ""), 0},
		{"all before", "all=b\n10.0.0.0/8=a", flow(TCP, "10.0.0.1:1", ""), 0},
		{"no rules", "", flow(TCP, "10.0.0.1:1", ""), -1},
		{"zero flow", "10.0.0.0/8=a\nfd00::/8=b\ndomain:x=c\nport:1=d", &Flow{}, -1},
		{"zero flow, all", "10.0.0.0/8=a\nall=b", &Flow{}, 1},
	} {
		rules := mustRules(t, tc.rules)
		tab := NewTable(rules)
		if tab.Len() != len(rules) {
			t.Errorf("%s: Len() = %d, want %d", tc.name, tab.Len(), len(rules))
		}
		r, i, ok := tab.Lookup(tc.flow)
		if i != tc.want || ok != (tc.want >= 0) || (ok && r != rules[i]) || (!ok && r != nil) {
			t.Errorf("%s: Lookup(%+v) = %v, %d, %v; want index %d", tc.name, tc.flow, r, i, ok, tc.want)
		}
	}
}

func TestLookupName(t *testing.T) {
	for _, tc := range []struct {
		name, rules, lookup string
		want                int
	}{
		{"domain", "domain:ads.example=block", "x.ads.example", 0},
		{"domain, trailing dot", "domain:ads.example=block", "x.ads.example.", 0},
		{"domain, not under", "domain:ads.example=block", "badads.example", -1},
		{"domain with port does not count", "domain:x.example,port:443=block", "x.example", -1},
		{"domain with protocol does not count", "domain:x.example,tcp=block", "x.example", -1},
		{"domain with every protocol counts", "domain:x.example,tcp,udp,icmp=block", "x.example", 0},
		{"domain with CIDR does not count", "domain:x.example,10.0.0.0/8=block", "x.example", -1},
		{"all counts", "all=block", "x.example", 0},
		{"CIDR does not count", "0.0.0.0/0=block\n::/0=block", "x.example", -1},
		{"protocol does not count", "tcp,udp=block", "x.example", -1},
		{"first counting rule", "domain:x.example,port:443=a\n10.0.0.0/8=b\ndomain:example=c\nall=d", "x.example", 2},
		{"all before domain", "all=d\ndomain:x.example=a", "x.example", 0},
		{"empty name", "domain:x.example=a", "", -1},
		{"empty name, all", "domain:x.example=a\nall=b", "", 1},
	} {
		rules := mustRules(t, tc.rules)
		r, i, ok := NewTable(rules).LookupName(tc.lookup)
		if i != tc.want || ok != (tc.want >= 0) || (ok && r != rules[i]) {
			t.Errorf("%s: LookupName(%q) = %v, %d, %v; want index %d", tc.name, tc.lookup, r, i, ok, tc.want)
		}
	}
}

// TestLookupAgainstScan checks the indexes against the plain definition
// (the first rule whose conditions hold) on random nested rules and flows.
func TestLookupAgainstScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for i := range 3000 {
		b.WriteString(randomRule(rng, i))
		b.WriteByte('\n')
	}
	rules := mustRules(t, b.String())
	tab := NewTable(rules)
	for range 20000 {
		f := randomFlow(rng)
		want := -1
		p := newProbe(f)
		for i, r := range rules {
			if r.matches(&p) {
				want = i
				break
			}
		}
		if _, got, _ := tab.Lookup(f); got != want {
			t.Fatalf("Lookup(%+v) = %d, a scan finds %d (%v)", f, got, want, rules[max(want, 0)].Text)
		}
	}
}

// Addresses and names come from small pools, so that rules nest and
// overlap and flows hit them.
var (
	pool4   = []string{"10.0.0.0", "10.1.0.0", "10.1.2.0", "10.1.2.3", "10.128.0.0", "192.168.1.0", "0.0.0.0"}
	pool6   = []string{"fd00::", "fd00:1::", "fd00:1::8000:0", "2001:db8::", "2001:db8::1", "::"}
	poolDom = []string{"example.com", "a.example.com", "b.a.example.com", "com", "badexample.com", "org", "x.org"}
)

func randomRule(rng *rand.Rand, i int) string {
	var conds []string
	if rng.IntN(2) == 0 {
		var p netip.Prefix
		if rng.IntN(2) == 0 {
			p = netip.PrefixFrom(netip.MustParseAddr(pool4[rng.IntN(len(pool4))]), rng.IntN(33))
		} else {
			p = netip.PrefixFrom(netip.MustParseAddr(pool6[rng.IntN(len(pool6))]), rng.IntN(129))
		}
		conds = append(conds, p.Masked().String())
	}
	if rng.IntN(3) == 0 {
		conds = append(conds, "domain:"+poolDom[rng.IntN(len(poolDom))])
	}
	if rng.IntN(8) == 0 {
		lo := 1 + rng.IntN(100)
		conds = append(conds, fmt.Sprintf("port:%d-%d", lo, lo+rng.IntN(100)))
	}
	if rng.IntN(8) == 0 {
		conds = append(conds, Proto(1+rng.IntN(3)).String())
	}
	if len(conds) == 0 {
		if rng.IntN(500) != 0 {
			conds = append(conds, "port:"+fmt.Sprint(1+rng.IntN(200)))
		} else {
			conds = append(conds, "all")
		}
	}
	return strings.Join(conds, ",") + fmt.Sprintf("=r%d", i)
}

func randomFlow(rng *rand.Rand) *Flow {
	var a netip.Addr
	if rng.IntN(2) == 0 {
		a = netip.MustParseAddr(pool4[rng.IntN(len(pool4))])
	} else {
		a = netip.MustParseAddr(pool6[rng.IntN(len(pool6))])
	}
	// Flip a few low bits to land inside or beside the prefixes.
	b := a.AsSlice()
	b[len(b)-1-rng.IntN(3)] ^= byte(rng.IntN(256))
	a, _ = netip.AddrFromSlice(b)
	f := &Flow{Proto: Proto(1 + rng.IntN(3)), Dst: netip.AddrPortFrom(a, uint16(rng.IntN(210)))}
	if rng.IntN(2) == 0 {
		f.Name = []string{"", "www."}[rng.IntN(2)] + poolDom[rng.IntN(len(poolDom))]
	}
	return f
}
