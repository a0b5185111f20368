package stack

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/tungate/tungate/stack/tunlink"
)

// notForwarded is what a gateway never forwards: IPv4 limited broadcast,
// IPv4 and IPv6 multicast, and the directed broadcast address of every IPv4
// subnet on the calling namespace's interfaces (the host's), read with
// netlink once, when the link is made: a subnet added later is not
// covered.
func notForwarded() (tunlink.Destinations, error) {
	d := tunlink.Destinations{BroadcastMulticast: true}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return d, fmt.Errorf("list the host's IPv4 addresses for their broadcast addresses: %w", err)
	}
	for _, a := range addrs {
		if b, ok := directedBroadcast(a); ok {
			d.Broadcasts = append(d.Broadcasts, b)
		}
	}
	return d, nil
}

// directedBroadcast is a's subnet's broadcast address: the one the kernel
// holds (IFA_BROADCAST), or else the subnet's last address. Subnets of /31
// and /32 have none.
func directedBroadcast(a netlink.Addr) (netip.Addr, bool) {
	if b, ok := netip.AddrFromSlice(a.Broadcast); ok && b.Unmap().Is4() && !b.Unmap().IsUnspecified() {
		return b.Unmap(), true
	}
	if a.IPNet == nil {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	ones, bits := a.Mask.Size()
	if !ok || !ip.Unmap().Is4() || bits != 32 || ones >= 31 {
		return netip.Addr{}, false
	}
	return lastAddr(netip.PrefixFrom(ip.Unmap(), ones)), true
}

// lastAddr is the highest address of IPv4 prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := ^uint32(0) >> p.Bits()
	for i := range 4 {
		b[i] |= byte(host >> (24 - 8*i))
	}
	return netip.AddrFrom4(b)
}

// subnetBroadcasts are the directed broadcast addresses of the IPv4
// prefixes among ps (a device's own addresses, which the host's interfaces
// do not show when the device is in another namespace); /31 and /32 have
// none.
func subnetBroadcasts(ps []netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, p := range ps {
		if p.Addr().Unmap().Is4() && p.Bits() < 31 {
			out = append(out, lastAddr(netip.PrefixFrom(p.Addr().Unmap(), p.Bits())))
		}
	}
	return out
}
