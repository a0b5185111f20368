package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/tungate/tungate/stack/hostroute"
)

// autoRouteConfig is what the --auto-route flags say.
type autoRouteConfig struct {
	on bool
	// table and priority are 0 until validate settles the defaults.
	table       int
	priority    int
	exclude     prefixList
	excludeUIDs uidRangeList
	includeUIDs uidRangeList
	routeLAN    bool
	noDNSHijack bool
	failOpen    bool
}

// addAutoRouteFlags registers the --auto-route flags (gateway only).
func addAutoRouteFlags(fs *pflag.FlagSet, c *autoRouteConfig) {
	fs.BoolVar(&c.on, "auto-route", false, "route all traffic of tungate's network namespace into the device, IPv4 and IPv6, and remove the routing on exit; marks tungate's sockets with --fwmark, default 0x2d1, unless --interface (see README: Whole host)")
	fs.Var(intValue{&c.table, 1, 0x7fffffff}, "route-table", "with --auto-route, the routing table of its own")
	fs.Lookup("route-table").DefValue = strconv.Itoa(hostroute.DefaultTable)
	fs.Var(intValue{&c.priority, 1, 32766 - hostroute.PriorityBlock}, "rule-priority", fmt.Sprintf("with --auto-route, the first of %d policy rule priorities of its own", hostroute.PriorityBlock))
	fs.Lookup("rule-priority").DefValue = strconv.Itoa(hostroute.DefaultPriority)
	fs.Var(&c.exclude, "exclude", "with --auto-route, a destination that goes out the normal route, repeatable")
	fs.Var(&c.excludeUIDs, "exclude-uid", "with --auto-route, leave out these users' traffic, repeatable")
	fs.Var(&c.includeUIDs, "include-uid", "with --auto-route, capture only these users' traffic, repeatable")
	fs.BoolVar(&c.routeLAN, "route-lan", false, "with --auto-route, also capture destinations on directly connected subnets")
	fs.BoolVar(&c.noDNSHijack, "no-dns-hijack", false, "with --auto-route, treat DNS like other traffic (LAN resolvers reached directly) instead of capturing port 53 whatever its destination")
	fs.BoolVar(&c.failOpen, "fail-open", false, "with --auto-route, let traffic go out the normal route while tungate is not serving, instead of failing with \"network unreachable\"")
}

// validateAutoRoute checks the --auto-route flags against the others and
// settles their defaults, including the default --fwmark.
func (c *gatewayConfig) validateAutoRoute() error {
	a := &c.autoRoute
	if !a.on {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"--route-table", a.table != 0}, {"--rule-priority", a.priority != 0},
			{"--exclude", len(a.exclude.values) > 0}, {"--exclude-uid", len(a.excludeUIDs) > 0},
			{"--include-uid", len(a.includeUIDs) > 0}, {"--route-lan", a.routeLAN},
			{"--no-dns-hijack", a.noDNSHijack}, {"--fail-open", a.failOpen},
		} {
			if f.set {
				return usageErrorf("%s only applies with --auto-route", f.name)
			}
		}
		return nil
	}
	switch {
	case c.netns != "":
		return usageErrorf("--auto-route routes tungate's own network namespace into the device; with --netns the device is elsewhere: drop one of them")
	case c.noRoutes:
		return usageErrorf("--auto-route adds routes; --no-routes says not to: drop one of them")
	case c.device.fd >= 0:
		return usageErrorf("--auto-route needs a tun://NAME device, not %s", c.device.String())
	}
	if a.table == 0 {
		a.table = hostroute.DefaultTable
	}
	if a.priority == 0 {
		a.priority = hostroute.DefaultPriority
	}
	if c.iface == "" && c.fwmark == 0 {
		c.fwmark = hostroute.DefaultMark
	}
	return nil
}

// uidRangeList is a repeatable UID[-UID] flag.
type uidRangeList []hostroute.UIDRange

func (l *uidRangeList) String() string {
	s := make([]string, len(*l))
	for i, r := range *l {
		s[i] = fmt.Sprintf("%d-%d", r.First, r.Last)
	}
	return strings.Join(s, ",")
}

func (l *uidRangeList) Set(s string) error {
	first, last, isRange := strings.Cut(s, "-")
	a, err := strconv.ParseUint(first, 10, 32)
	b := a
	if err == nil && isRange {
		b, err = strconv.ParseUint(last, 10, 32)
	}
	if err != nil {
		return fmt.Errorf("want a user id or a range of them, such as 1000 or 1000-1999")
	}
	if a > b {
		return fmt.Errorf("the range %d-%d is empty: write the lower id first", a, b)
	}
	*l = append(*l, hostroute.UIDRange{First: uint32(a), Last: uint32(b)})
	return nil
}

func (l *uidRangeList) Type() string { return "UID[-UID]" }
