package stack

import (
	"fmt"
	"log/slog"
	"net/netip"

	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/tungate/tungate/stack/tun"
	"github.com/tungate/tungate/stack/tunlink"
)

// NewTUNLink returns the link endpoint for the queues of a TUN device, fds
// (one fd, or those of a multi-queue device, tun.Device.QueueFDs): with
// segmentation and checksum offload when they carry a virtio_net_hdr
// (IFF_VNET_HDR), plain packets otherwise. It does not take ownership of
// fds. onGone, if not nil, is called once when the device goes away;
// onBurstEnd, if not nil, each time a queue has no more packets to read
// (the handler sends the datagrams it gathered from the burst).
//
// The endpoint drops what a gateway does not forward (see notForwarded:
// broadcast and multicast, the host's directed broadcasts as they are
// now, and those of the device's own IPv4 subnets, device, which may be
// in another namespace), counted in Counters.NotForwarded.
func NewTUNLink(fds []int, mtu uint32, device []netip.Prefix, log *slog.Logger, onGone func(error), onBurstEnd func()) (gvstack.LinkEndpoint, error) {
	if len(fds) == 0 {
		return nil, fmt.Errorf("create link endpoint: no TUN fd")
	}
	vnet, err := tun.HasVnetHdr(fds[0])
	if err != nil {
		return nil, err
	}
	drop, err := notForwarded()
	if err != nil && log != nil {
		// Broadcast and multicast are still dropped.
		log.Warn("directed broadcasts of the host's subnets will be forwarded", "err", err)
	}
	drop.Broadcasts = append(drop.Broadcasts, subnetBroadcasts(device)...)
	ep, err := tunlink.New(tunlink.Options{
		FD:         fds[0],
		Queues:     fds[1:],
		MTU:        mtu,
		VnetHdr:    vnet,
		VnetHdrLen: tun.VnetHdrLen,
		Logger:     log,
		OnFatal:    onGone,
		OnBurstEnd: onBurstEnd,
		Drop:       drop,
	})
	if err != nil {
		return nil, fmt.Errorf("create link endpoint: %w", err)
	}
	return ep, nil
}
