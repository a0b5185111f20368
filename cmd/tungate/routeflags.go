package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/tungate/tungate/forwarder/route"
)

// routeConfig is what --route and --routes say: the rules, in the order
// they are tried (the file's first, then the flags').
type routeConfig struct {
	flags []*route.Rule // --route, in order
	file  string        // --routes
	// rules is the whole list, set by load.
	rules []*route.Rule
}

func addRouteFlags(fs *pflag.FlagSet, c *routeConfig) {
	fs.Var(&routeFlag{c}, "route", "send flows that match MATCH (CIDR, domain:NAME, port:N[-M], tcp, udp, icmp or all, joined by ',') to ACTION (direct, block, proxy or a chain's NAME), repeatable, first match wins")
	fs.StringVar(&c.file, "routes", "", "read --route rules from `FILE`, one per line ('#' comments), before the --route flags")
}

// load reads the --routes file and puts its rules before the flags'. Any
// problem is a usage error naming the rule and, for the file, the line.
func (c *routeConfig) load() error {
	c.rules = c.flags
	if c.file == "" {
		return nil
	}
	f, err := os.Open(c.file)
	if err != nil {
		return usageErrorf("--routes: %v", err)
	}
	defer f.Close()
	rules, err := route.ParseRules(f, c.file)
	if err != nil {
		return usageErrorf("--routes: %w", err)
	}
	c.rules = append(rules, c.flags...)
	return nil
}

// ruleWhere names a rule in an error: `--route "X=Y"` or
// `FILE:LINE: route "X=Y"`.
func ruleWhere(r *route.Rule) string {
	if strings.HasPrefix(r.Origin, "-") {
		return fmt.Sprintf("%s %q", r.Origin, r.Text)
	}
	return fmt.Sprintf("%s: route %q", r.Origin, r.Text)
}

// routeFlag is the repeatable --route flag.
type routeFlag struct{ c *routeConfig }

func (f *routeFlag) String() string {
	if f.c == nil {
		return ""
	}
	s := make([]string, len(f.c.flags))
	for i, r := range f.c.flags {
		s[i] = r.Text
	}
	return strings.Join(s, " ")
}

func (f *routeFlag) Set(s string) error {
	r, err := route.ParseRule(s, "--route")
	if err != nil {
		return err
	}
	f.c.flags = append(f.c.flags, r)
	return nil
}

func (f *routeFlag) Type() string { return "MATCH=ACTION" }
