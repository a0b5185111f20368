package hostroute

import (
	"net/netip"
	"strings"
	"testing"
)

func TestPlanRules(t *testing.T) {
	base := Config{Device: "tg0", Table: DefaultTable, Priority: DefaultPriority, Mark: DefaultMark}
	cases := []struct {
		name   string
		change func(*Config)
		want   []string // IPv4 rules, in order
	}{
		{"defaults", func(*Config) {}, []string{
			"IPv4 rule 9000: fwmark 0x2d1 lookup main",
			"IPv4 rule 9003: iif lo ipproto udp dport 53 lookup 2022",
			"IPv4 rule 9004: iif lo ipproto udp dport 53 unreachable",
			"IPv4 rule 9003: iif lo ipproto tcp dport 53 lookup 2022",
			"IPv4 rule 9004: iif lo ipproto tcp dport 53 unreachable",
			"IPv4 rule 9005: lookup main suppress_prefixlength 0",
			"IPv4 rule 9006: iif lo lookup 2022",
			"IPv4 rule 9007: iif lo unreachable",
		}},
		{"everything", func(c *Config) {
			c.Priority, c.Table, c.BoundInterface = 100, 7, "eth0"
			c.Exclude = []netip.Prefix{netip.MustParsePrefix("192.0.2.7/24"), netip.MustParsePrefix("2001:db8::/32")}
			c.ExcludeUIDs = []UIDRange{{1000, 1999}}
			c.IncludeUIDs = []UIDRange{{5, 5}, {7, 9}}
			c.RouteLAN, c.NoDNSHijack, c.FailOpen = true, true, true
		}, []string{
			"IPv4 rule 100: fwmark 0x2d1 lookup main",
			"IPv4 rule 100: oif eth0 lookup main",
			"IPv4 rule 101: to 192.0.2.0/24 lookup main",
			"IPv4 rule 102: uidrange 1000-1999 lookup main",
			"IPv4 rule 106: iif lo uidrange 5-5 lookup 7",
			"IPv4 rule 106: iif lo uidrange 7-9 lookup 7",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.change(&cfg)
			if err := cfg.check(); err != nil {
				t.Fatal(err)
			}
			p := buildPlan(&cfg, 42)
			var v4, v6 []string
			for i := range p.rules {
				if d := describeRule(&p.rules[i]); strings.HasPrefix(d, "IPv4") {
					v4 = append(v4, d)
				} else {
					v6 = append(v6, d)
				}
				if p.rules[i].Protocol != Protocol {
					t.Errorf("rule %s lacks the protocol mark", describeRule(&p.rules[i]))
				}
			}
			if got, want := strings.Join(v4, "\n"), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("IPv4 rules:\n%s\nwant:\n%s", got, want)
			}
			if len(v6) != len(v4) {
				t.Errorf("%d IPv6 rules for %d IPv4 ones:\n%s", len(v6), len(v4), strings.Join(v6, "\n"))
			}
			if len(p.routes) != 2 || p.routes[0].LinkIndex != 42 || p.routes[0].Table != cfg.Table {
				t.Errorf("routes %+v: want one default route into device 42 in table %d per family", p.routes, cfg.Table)
			}
		})
	}
}

func TestConfigCheck(t *testing.T) {
	base := Config{Device: "tg0", Table: DefaultTable, Priority: DefaultPriority, Mark: DefaultMark}
	cases := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"main table", func(c *Config) { c.Table = 254 }, "table 254"},
		{"priority past main", func(c *Config) { c.Priority = 32760 }, "rule priority"},
		{"no mark", func(c *Config) { c.Mark = 0 }, "mark 0"},
		{"empty include range", func(c *Config) { c.IncludeUIDs = []UIDRange{{10, 5}} }, "10-5 is empty"},
		{"no device", func(c *Config) { c.Device = "" }, "no device"},
	}
	for _, tc := range cases {
		cfg := base
		tc.change(&cfg)
		err := cfg.check()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}
