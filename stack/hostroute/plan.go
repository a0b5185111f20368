package hostroute

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// plan is the rules and routes Install adds, in the order it adds them:
// routes first, and the capturing rules last, so traffic is only sent to
// the table once everything that keeps it out is in place.
type plan struct {
	routes []netlink.Route
	rules  []netlink.Rule
}

// families are the address families Install covers.
var families = [...]int{netlink.FAMILY_V4, netlink.FAMILY_V6}

// newPlan checks cfg and builds the plan; it looks up the device's index.
func newPlan(cfg *Config) (*plan, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	link, err := netlink.LinkByName(cfg.Device)
	if err != nil {
		return nil, fmt.Errorf("auto-route: look up device %q: %w", cfg.Device, err)
	}
	return buildPlan(cfg, link.Attrs().Index), nil
}

// check reports values Install cannot use.
func (c *Config) check() error {
	switch {
	case c.Device == "":
		return errors.New("auto-route: no device")
	case c.Table <= 0 || c.Table == unix.RT_TABLE_MAIN || c.Table == unix.RT_TABLE_LOCAL || c.Table == unix.RT_TABLE_DEFAULT || c.Table > 0x7fffffff:
		return fmt.Errorf("auto-route: table %d is not a table of its own", c.Table)
	case c.Priority <= 0 || c.Priority+PriorityBlock > 32766:
		return fmt.Errorf("auto-route: rule priority %d: want 1 to %d, below the main table's rule", c.Priority, 32766-PriorityBlock)
	case c.Mark == 0:
		return errors.New("auto-route: mark 0 cannot tell tungate's packets apart")
	}
	for _, u := range append(append([]UIDRange(nil), c.ExcludeUIDs...), c.IncludeUIDs...) {
		if u.First > u.Last {
			return fmt.Errorf("auto-route: uid range %d-%d is empty", u.First, u.Last)
		}
	}
	return nil
}

// buildPlan is newPlan without the look-up: the device has index ifindex.
func buildPlan(cfg *Config, ifindex int) *plan {
	p := &plan{}
	for _, fam := range families {
		p.routes = append(p.routes, netlink.Route{
			Family:    fam,
			LinkIndex: ifindex,
			Dst:       anyNet(fam),
			Table:     cfg.Table,
			Priority:  metricDevice,
			Protocol:  Protocol,
			Scope:     scopeFor(fam),
		})
	}
	// users is who the capturing rules apply to: nil means everyone.
	users := []*netlink.RuleUIDRange{nil}
	if len(cfg.IncludeUIDs) > 0 {
		users = users[:0]
		for _, u := range cfg.IncludeUIDs {
			users = append(users, netlink.NewRuleUIDRange(u.First, u.Last))
		}
	}
	for _, fam := range families {
		add := func(prio int, table int, set func(*netlink.Rule)) {
			r := netlink.NewRule()
			r.Family, r.Priority, r.Table, r.Protocol = fam, cfg.Priority+prio, table, Protocol
			set(r)
			p.rules = append(p.rules, *r)
		}
		add(prioBypass, unix.RT_TABLE_MAIN, func(r *netlink.Rule) {
			mask := ^uint32(0)
			r.Mark, r.Mask = cfg.Mark, &mask
		})
		if cfg.BoundInterface != "" {
			add(prioBypass, unix.RT_TABLE_MAIN, func(r *netlink.Rule) { r.OifName = cfg.BoundInterface })
		}
		for _, dst := range cfg.Exclude {
			if familyOf(dst.Addr()) == fam {
				add(prioExclude, unix.RT_TABLE_MAIN, func(r *netlink.Rule) { r.Dst = prefixNet(dst.Masked()) })
			}
		}
		for _, u := range cfg.ExcludeUIDs {
			add(prioExcludeUID, unix.RT_TABLE_MAIN, func(r *netlink.Rule) { r.UIDRange = netlink.NewRuleUIDRange(u.First, u.Last) })
		}
		if !cfg.NoDNSHijack {
			for _, proto := range []int{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
				for _, u := range users {
					dns := func(r *netlink.Rule) {
						r.IifName, r.UIDRange, r.IPProto = "lo", u, proto
						r.Dport = netlink.NewRulePortRange(53, 53)
					}
					add(prioDNS, cfg.Table, dns)
					if !cfg.FailOpen {
						add(prioDNSClosed, 0, func(r *netlink.Rule) { dns(r); r.Type = unix.RTN_UNREACHABLE })
					}
				}
			}
		}
		if !cfg.RouteLAN {
			add(prioLAN, unix.RT_TABLE_MAIN, func(r *netlink.Rule) { r.SuppressPrefixlen = 0 })
		}
		for _, u := range users {
			// iif lo is every locally generated packet; forwarded traffic
			// (containers, a routed LAN) keeps the main table.
			add(prioCapture, cfg.Table, func(r *netlink.Rule) { r.IifName, r.UIDRange = "lo", u })
			if !cfg.FailOpen {
				// Reached when the table is empty: the device, and with it
				// its route, is gone.
				add(prioClosed, 0, func(r *netlink.Rule) { r.IifName, r.UIDRange, r.Type = "lo", u, unix.RTN_UNREACHABLE })
			}
		}
	}
	return p
}

func familyOf(a netip.Addr) int {
	if a.Is4() || a.Is4In6() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func isIPv6(fam int) bool { return fam == netlink.FAMILY_V6 }

func anyNet(fam int) *net.IPNet {
	if isIPv6(fam) {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}

func scopeFor(fam int) netlink.Scope {
	if isIPv6(fam) {
		return netlink.SCOPE_UNIVERSE
	}
	return netlink.SCOPE_LINK
}

func prefixNet(p netip.Prefix) *net.IPNet {
	a := p.Addr().Unmap()
	bits := p.Bits()
	if p.Addr().Is4In6() {
		bits -= 96
	}
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(bits, a.BitLen())}
}

// describeRule names a rule the way `ip rule` shows it, roughly.
func describeRule(r *netlink.Rule) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s rule %d:", familyName(r.Family), r.Priority)
	if r.Dst != nil {
		fmt.Fprintf(&b, " to %s", r.Dst)
	}
	if r.Mark != 0 {
		fmt.Fprintf(&b, " fwmark %#x", r.Mark)
	}
	if r.IifName != "" {
		fmt.Fprintf(&b, " iif %s", r.IifName)
	}
	if r.OifName != "" {
		fmt.Fprintf(&b, " oif %s", r.OifName)
	}
	if r.UIDRange != nil {
		fmt.Fprintf(&b, " uidrange %d-%d", r.UIDRange.Start, r.UIDRange.End)
	}
	switch r.IPProto {
	case 0:
	case unix.IPPROTO_TCP:
		b.WriteString(" ipproto tcp")
	case unix.IPPROTO_UDP:
		b.WriteString(" ipproto udp")
	default:
		fmt.Fprintf(&b, " ipproto %d", r.IPProto)
	}
	if r.Dport != nil {
		fmt.Fprintf(&b, " dport %d", r.Dport.Start)
	}
	switch {
	case r.Type == unix.RTN_UNREACHABLE || r.Table == 0:
		// A rule listing does not carry the action; an action without a
		// table is, among tungate's rules, unreachable.
		b.WriteString(" unreachable")
	case r.Table == unix.RT_TABLE_MAIN:
		b.WriteString(" lookup main")
	default:
		fmt.Fprintf(&b, " lookup %d", r.Table)
	}
	if r.SuppressPrefixlen >= 0 {
		fmt.Fprintf(&b, " suppress_prefixlength %d", r.SuppressPrefixlen)
	}
	return b.String()
}

// describeRoute names a route the way `ip route` shows it, roughly.
func describeRoute(r *netlink.Route) string {
	kind := "route"
	dst := "default"
	if r.Dst != nil {
		if ones, _ := r.Dst.Mask.Size(); ones != 0 {
			dst = r.Dst.String()
		}
	}
	s := fmt.Sprintf("%s %s %s table %d metric %d", familyName(r.Family), kind, dst, r.Table, r.Priority)
	if r.LinkIndex != 0 {
		s += fmt.Sprintf(" dev #%d", r.LinkIndex)
	}
	return s
}

func familyName(fam int) string {
	if isIPv6(fam) {
		return "IPv6"
	}
	return "IPv4"
}

// gone reports whether a delete failed because the entry is already gone.
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENODEV)
}

// ipv6Off reports how the kernel refuses IPv6 work on a device with
// disable_ipv6 set, or without IPv6 at all.
func ipv6Off(err error) bool {
	return errors.Is(err, unix.EACCES) || errors.Is(err, unix.EAFNOSUPPORT)
}

// permHint adds what to do to a permission error.
func permHint(err error) error {
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%w (needs root or CAP_NET_ADMIN)", err)
	}
	return err
}
