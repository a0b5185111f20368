package route

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseRuleErrors(t *testing.T) {
	for _, tc := range []struct {
		text string
		want string // a part of the error that tells the writer what to do
	}{
		{"", "empty rule: want MATCH=ACTION"},
		{"   ", "empty rule"},
		{"10.0.0.0/8", "no '=': want MATCH=ACTION such as 10.0.0.0/8=direct"},
		{"=direct", "empty MATCH"},
		{"10.0.0.0/8=", "empty ACTION after '=': want direct, block, proxy or a chain name"},
		{"10.0.0.0/8=  ", "empty ACTION"},
		{"10.0.0.0/8=co rp", `bad action "co rp"`},
		{"10.0.0.0/8=a=b", `bad action "a=b"`},
		{"10.0.0.0/8=tör", `bad action "tör"`},
		{"tcp,,udp=direct", "empty condition"},
		{"tcp,=direct", "empty condition"},
		{"bogus=direct", `unknown condition "bogus": want a CIDR, domain:NAME, port:N, port:N-M, tcp, udp, icmp or all`},
		{"example.com=block", `unknown condition "example.com": for a name, write domain:example.com`},
		{"host:example.com=block", `unknown condition "host:example.com"`},
		{"dead:beef=block", `bad CIDR "dead:beef": want ADDR/BITS such as fd00::/8`},
		{"10.0.0.0/33=direct", `bad CIDR "10.0.0.0/33": want ADDR/BITS such as 10.0.0.0/8`},
		{"fd00::/129=direct", `bad CIDR "fd00::/129": want ADDR/BITS such as fd00::/8`},
		{"10.0.0/8=direct", `bad CIDR "10.0.0/8"`},
		{"300.1.1.1=direct", `bad CIDR "300.1.1.1"`},
		{"10.0.0.0/=direct", `bad CIDR "10.0.0.0/"`},
		{"1.2.3.4:80=direct", `bad CIDR "1.2.3.4:80"`},
		{"fe80::1%eth0=direct", `bad CIDR "fe80::1%eth0"`},
		{"10.1.2.3/8=direct", `host bits set; write 10.0.0.0/8 for the network, or 10.1.2.3/32 for the one address`},
		{"fd00::1/8=direct", `host bits set; write fd00::/8`},
		{"10.0.0.0/8,192.168.0.0/16=direct", "two CIDRs: conditions are ANDed, so write one rule per CIDR"},
		{"port:0=block", `bad port "port:0": want port:N or port:N-M with 1 <= N <= M <= 65535`},
		{"port:65536=block", `bad port "port:65536"`},
		{"port:=block", `bad port "port:"`},
		{"port:80-79=block", `bad port "port:80-79"`},
		{"port:80-=block", `bad port "port:80-"`},
		{"port:-80=block", `bad port "port:-80"`},
		{"port:+80=block", `bad port "port:+80"`},
		{"port:http=block", `bad port "port:http"`},
		{"port:80,port:443=block", "two port conditions"},
		{"domain:=block", "empty domain name: want domain:NAME such as domain:example.com"},
		{"domain:.=block", "empty domain name"},
		{"domain:*.example=block", "wildcard in domain \"*.example\" is not supported: write domain:example (it matches every name under it)"},
		{"domain:a.*.example=block", "write the name itself"},
		{"domain:bücher.example=block", "write an IDN in its punycode (xn--) form"},
		{"domain:exa mple.com=block", `bad domain "exa mple.com": want labels of letters, digits`},
		{"domain:exa/mple.com=block", `bad domain`},
		{"domain:a..b=block", `empty label in domain "a..b"`},
		{"domain:.example=block", `empty label in domain ".example"`},
		{"domain:" + strings.Repeat("a", 64) + ".com=block", "longer than 63 bytes"},
		{"domain:" + strings.Repeat("a.", 130) + "com=block", "longer than 253 bytes"},
		{"domain:a.com,domain:b.com=block", "two domain conditions"},
		{"all,tcp=block", "all matches every flow and stands alone"},
	} {
		r, err := ParseRule(tc.text, "--route")
		if err == nil {
			t.Errorf("ParseRule(%q) = %+v, want an error", tc.text, r)
			continue
		}
		if !errors.Is(err, ErrBadRule) {
			t.Errorf("ParseRule(%q): %v does not wrap ErrBadRule", tc.text, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) {
			t.Errorf("ParseRule(%q) error\n  %s\nwant it to contain\n  %s", tc.text, msg, tc.want)
		}
		if want := "--route " + strconv.Quote(strings.TrimSpace(tc.text)) + ": "; !strings.HasPrefix(msg, want) {
			t.Errorf("ParseRule(%q) error %q does not start with %q", tc.text, msg, want)
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("ParseRule(%q) error is not one line: %q", tc.text, msg)
		}
	}
}

func TestParseRuleErrorNamesOrigin(t *testing.T) {
	for _, tc := range []struct{ origin, want string }{
		{"--route", `--route "bogus=x": unknown condition`},
		{"rules.txt:7", `rules.txt:7: route "bogus=x": unknown condition`},
		{"", `route "bogus=x": unknown condition`},
	} {
		_, err := ParseRule("bogus=x", tc.origin)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("origin %q: error %v, want it to start with %q", tc.origin, err, tc.want)
		}
	}
}

func TestParseRule(t *testing.T) {
	pfx := netip.MustParsePrefix
	for _, tc := range []struct {
		text   string
		action string
		want   conds
	}{
		{"10.0.0.0/8=direct", "direct", conds{prefix: pfx("10.0.0.0/8")}},
		{" 10.0.0.0/8 = corp ", "corp", conds{prefix: pfx("10.0.0.0/8")}},
		{"fd00::/8=block", "block", conds{prefix: pfx("fd00::/8")}},
		{"10.1.2.3=proxy", "proxy", conds{prefix: pfx("10.1.2.3/32")}},
		{"2001:db8::1=proxy", "proxy", conds{prefix: pfx("2001:db8::1/128")}},
		{"::ffff:10.0.0.0/104=direct", "direct", conds{prefix: pfx("10.0.0.0/8")}},
		{"::ffff:10.1.2.3=direct", "direct", conds{prefix: pfx("10.1.2.3/32")}},
		{"::ffff:0:0/96=direct", "direct", conds{prefix: pfx("0.0.0.0/0")}},
		{"::fffe:0:0/95=direct", "direct", conds{prefix: pfx("::fffe:0:0/95")}},
		{"dead:beef::/32=direct", "direct", conds{prefix: pfx("dead:beef::/32")}},
		{"0.0.0.0/0=direct", "direct", conds{prefix: pfx("0.0.0.0/0")}},
		{"domain:Corp.Example.=corp", "corp", conds{domain: "corp.example"}},
		{"DOMAIN:xn--bcher-kva.example=tor", "tor", conds{domain: "xn--bcher-kva.example"}},
		{"domain:_dmarc.a-b.example=block", "block", conds{domain: "_dmarc.a-b.example"}},
		{"port:443=proxy", "proxy", conds{portLo: 443, portHi: 443}},
		{"port : 443 , domain : x.example = proxy", "proxy", conds{portLo: 443, portHi: 443, domain: "x.example"}},
		{"port:8000-8999=proxy", "proxy", conds{portLo: 8000, portHi: 8999}},
		{"port:1-65535=proxy", "proxy", conds{portLo: 1, portHi: 65535}},
		{"tcp=proxy", "proxy", conds{protos: 1 << TCP}},
		{"TCP,udp=proxy", "proxy", conds{protos: 1<<TCP | 1<<UDP}},
		{"udp,udp=proxy", "proxy", conds{protos: 1 << UDP}},
		{"tcp,udp,icmp=proxy", "proxy", conds{}},
		{"all=block", "block", conds{}},
		{"ALL=block", "block", conds{}},
		{"udp,10.0.0.0/8,port:53,domain:x.example=my_chain.2", "my_chain.2",
			conds{protos: 1 << UDP, prefix: pfx("10.0.0.0/8"), portLo: 53, portHi: 53, domain: "x.example"}},
	} {
		r, err := ParseRule(tc.text, "--route")
		if err != nil {
			t.Errorf("ParseRule(%q): %v", tc.text, err)
			continue
		}
		if r.c != tc.want || r.Action != tc.action || r.Text != strings.TrimSpace(tc.text) || r.Origin != "--route" {
			t.Errorf("ParseRule(%q) = %+v, want conds %+v, action %q", tc.text, r, tc.want, tc.action)
		}
		if r.NeedsName() != (tc.want.domain != "") {
			t.Errorf("ParseRule(%q).NeedsName() = %v", tc.text, r.NeedsName())
		}
	}
}

func TestParseRules(t *testing.T) {
	file := "# LAN and intranet\n" +
		"\n" +
		"10.0.0.0/8=direct   # the office\n" +
		"   \t\n" +
		"domain:corp.example=corp\r\n" +
		"#all=block\n" +
		"all=proxy"
	rules, err := ParseRules(strings.NewReader(file), "rules.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ text, origin string }{
		{"10.0.0.0/8=direct", "rules.txt:3"},
		{"domain:corp.example=corp", "rules.txt:5"},
		{"all=proxy", "rules.txt:7"},
	}
	if len(rules) != len(want) {
		t.Fatalf("got %d rules, want %d", len(rules), len(want))
	}
	for i, w := range want {
		if rules[i].Text != w.text || rules[i].Origin != w.origin {
			t.Errorf("rule %d: %q from %q, want %q from %q", i, rules[i].Text, rules[i].Origin, w.text, w.origin)
		}
	}

	for _, tc := range []struct{ file, want string }{
		{"", ""},
		{"# nothing\n\n", ""},
		{"10.0.0.0/8=direct\n\n# x\n10.0.0.0/33=direct # bad\n", `rules.txt:4: route "10.0.0.0/33=direct": bad CIDR`},
		{"=direct", `rules.txt:1: route "=direct": empty MATCH`},
	} {
		rules, err := ParseRules(strings.NewReader(tc.file), "rules.txt")
		if tc.want == "" {
			if err != nil || len(rules) != 0 {
				t.Errorf("ParseRules(%q) = %v, %v; want no rules", tc.file, rules, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrBadRule) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("ParseRules(%q) error %v, want one starting %q", tc.file, err, tc.want)
		}
	}

	errRead := errors.New("disk on fire")
	_, err = ParseRules(iotest.ErrReader(errRead), "rules.txt")
	if !errors.Is(err, errRead) || errors.Is(err, ErrBadRule) || !strings.Contains(err.Error(), "reading rules rules.txt") {
		t.Errorf("read failure: %v", err)
	}
}

func TestProtoString(t *testing.T) {
	for p, want := range map[Proto]string{TCP: "tcp", UDP: "udp", ICMP: "icmp", 0: "proto(0)", 9: "proto(9)"} {
		if got := p.String(); got != want {
			t.Errorf("Proto(%d).String() = %q, want %q", p, got, want)
		}
	}
}
