package tun

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// defaultRoutes are the destinations NetConfig.DefaultRoutes sends into the
// device.
var defaultRoutes = [...]netip.Prefix{
	netip.PrefixFrom(netip.IPv4Unspecified(), 0),
	netip.PrefixFrom(netip.IPv6Unspecified(), 0),
}

// changes records what Configure added to a device it must leave as it found
// it, in the order added.
type changes struct {
	addrs  []netlink.Addr
	routes []netlink.Route
	// mtu is the MTU to restore; 0 if Configure did not change it.
	mtu int
}

// Configure sets MTU, addresses, link up and optionally default routes on the
// device, inside its namespace. Addresses already present are left alone.
//
// If IPv6 is disabled on the device, IPv6 addresses and the ::/0 route are
// skipped, everything else is applied, and the error wraps ErrIPv6Disabled
// (a caller may treat it as a warning). Any other error stops at that step.
func (d *Device) Configure(nc NetConfig) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("configure tun %q: device is closed", d.name)
	}
	link, err := d.nl.LinkByIndex(d.ifindex)
	if err != nil {
		return fmt.Errorf("configure tun %q: look up interface %d: %w", d.name, d.ifindex, err)
	}
	if nc.MTU != 0 && nc.MTU != link.Attrs().MTU {
		if err := d.nl.LinkSetMTU(link, nc.MTU); err != nil {
			return fmt.Errorf("set MTU %d on %q: %w", nc.MTU, d.name, err)
		}
		if !d.created && d.added.mtu == 0 {
			d.added.mtu = link.Attrs().MTU
		}
	}
	var skipped []string
	for _, p := range nc.Addresses {
		addr, err := netlinkAddr(p)
		if err != nil {
			return fmt.Errorf("add address to %q: %w", d.name, err)
		}
		err = d.nl.AddrAdd(link, addr)
		switch {
		case errors.Is(err, unix.EEXIST):
			// Present before: not ours to remove.
		case p.Addr().Is6() && ipv6Disabled(err):
			skipped = append(skipped, p.String())
		case err != nil:
			return fmt.Errorf("add address %s to %q: %w", p, d.name, err)
		case !d.created:
			addr.LinkIndex = d.ifindex
			d.added.addrs = append(d.added.addrs, *addr)
		}
	}
	if err := d.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %q up: %w", d.name, err)
	}
	if nc.DefaultRoutes {
		for _, dst := range defaultRoutes {
			err := d.addRoute(dst)
			switch {
			case dst.Addr().Is6() && ipv6Disabled(err):
				skipped = append(skipped, "route "+dst.String())
			case err != nil:
				return err
			}
		}
	}
	if len(skipped) > 0 {
		return fmt.Errorf("configure tun %q: %w, skipped %s: enable it with sysctl net.ipv6.conf.%s.disable_ipv6=0 in the device's namespace, or give only IPv4 addresses",
			d.name, ErrIPv6Disabled, strings.Join(skipped, ", "), d.name)
	}
	return nil
}

// addRoute sends dst into the device (scope link, no gateway: a TUN has no
// neighbours). A route to dst that already goes through the device is fine.
func (d *Device) addRoute(dst netip.Prefix) error {
	route := netlink.Route{
		LinkIndex: d.ifindex,
		Dst:       ipNet(dst),
		Protocol:  unix.RTPROT_STATIC,
	}
	if dst.Addr().Is4() {
		route.Scope = netlink.SCOPE_LINK
	}
	err := d.nl.RouteAdd(&route)
	if errors.Is(err, unix.EEXIST) {
		if d.routeThroughDevice(dst) {
			return nil
		}
		return fmt.Errorf("add route %s dev %q: %w: a route to %s already goes through another interface: remove it first", dst, d.name, ErrRouteExists, dst)
	}
	if err != nil {
		return fmt.Errorf("add route %s dev %q: %w", dst, d.name, err)
	}
	if !d.created {
		d.added.routes = append(d.added.routes, route)
	}
	return nil
}

// routeThroughDevice reports whether the main table routes dst via the device.
func (d *Device) routeThroughDevice(dst netip.Prefix) bool {
	family := netlink.FAMILY_V4
	if dst.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	routes, err := d.nl.RouteListFiltered(family, &netlink.Route{LinkIndex: d.ifindex}, netlink.RT_FILTER_OIF)
	if err != nil {
		return false
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.String() == ipNet(dst).String() {
			return true
		}
	}
	return false
}

// ipv6Disabled reports whether err is how the kernel refuses IPv6 work on a
// device with disable_ipv6 set (EACCES), or in a kernel booted without IPv6
// (EAFNOSUPPORT).
func ipv6Disabled(err error) bool {
	return errors.Is(err, unix.EACCES) || errors.Is(err, unix.EAFNOSUPPORT)
}

// netlinkAddr converts p, keeping its host bits (10.0.0.1/24 adds 10.0.0.1).
func netlinkAddr(p netip.Prefix) (*netlink.Addr, error) {
	if !p.IsValid() {
		return nil, fmt.Errorf("invalid prefix %s", p)
	}
	if p.Addr().Is4In6() {
		return nil, fmt.Errorf("address %s is IPv4-mapped IPv6: give it as IPv4", p)
	}
	addr := &netlink.Addr{IPNet: ipNet(p)}
	if p.Addr().Is6() {
		// No duplicate address detection: the address is usable at once,
		// and on a point-to-point TUN there is nobody to collide with.
		addr.Flags = unix.IFA_F_NODAD
	}
	return addr, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// undo removes what c records from interface ifindex, newest first, and
// restores its MTU. Things already gone (the device deleted, an address
// removed by hand) are not errors.
func (c *changes) undo(nl *netlink.Handle, ifindex int, name string) error {
	var errs []error
	for i := len(c.routes) - 1; i >= 0; i-- {
		if err := nl.RouteDel(&c.routes[i]); err != nil && !gone(err) {
			errs = append(errs, fmt.Errorf("remove route %s dev %q: %w", c.routes[i].Dst, name, err))
		}
	}
	for i := len(c.addrs) - 1; i >= 0; i-- {
		if err := nl.AddrDel(nil, &c.addrs[i]); err != nil && !gone(err) {
			errs = append(errs, fmt.Errorf("remove address %s from %q: %w", c.addrs[i].IPNet, name, err))
		}
	}
	if c.mtu != 0 {
		link, err := nl.LinkByIndex(ifindex)
		if err == nil {
			err = nl.LinkSetMTU(link, c.mtu)
		}
		if err != nil && !gone(err) && !errors.As(err, new(netlink.LinkNotFoundError)) {
			errs = append(errs, fmt.Errorf("restore MTU %d on %q: %w", c.mtu, name, err))
		}
	}
	*c = changes{}
	return errors.Join(errs...)
}

// gone reports whether err says the thing to remove no longer exists.
func gone(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENODEV) ||
		errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT)
}
