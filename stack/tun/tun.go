// Package tun opens Linux TUN devices: by name (creating the device if it does
// not exist), by an inherited file descriptor, or inside another network
// namespace; and configures them there (addresses, MTU, link up, routes).
//
// The calling process never moves to another namespace: work that must run
// inside one (opening the device) runs on a dedicated, locked OS thread, and
// configuration goes through a netlink socket opened in that namespace.
package tun

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VnetHdrLen is the size of the header in front of every packet read from or
// written to a device whose VnetHdr is true: a struct virtio_net_hdr (flags,
// gso_type, hdr_len, gso_size, csum_start, csum_offset; 10 bytes, without the
// num_buffers field of virtio_net_hdr_mrg_rxbuf / virtio_net_hdr_v1). Open sets
// it with TUNSETVNETHDRSZ, so it holds for inherited fds too.
const VnetHdrLen = 10

// offloadFlags are the offloads asked for with TUNSETOFFLOAD when VnetHdr is
// on: the kernel may then hand us TCP segments of up to 64 KiB (TSO4/TSO6)
// with a partial checksum (CSUM), described by the virtio_net_hdr.
const offloadFlags = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6

// Config says which TUN device to open and how.
type Config struct {
	// Name is the interface name for tun://NAME. Ignored when FD >= 0. An
	// empty name lets the kernel pick one (tun0, tun1...); Device.Name
	// reports it.
	Name string
	// FD, if >= 0, is an already-open TUN file descriptor inherited from the
	// parent (fd://N). Open checks that it is a TUN device; Device.Close
	// closes it. If Open fails, the fd is left open and still the caller's.
	// Open sets O_NONBLOCK on it, which the parent shares if it kept a copy.
	FD int
	// NetNS, if set, is the network namespace the device lives in: a name
	// under /run/netns or a path such as /proc/PID/ns/net. Only the device
	// is created there; the calling process stays in its own namespace.
	// With FD, the device's namespace is asked from the kernel
	// (TUNGETDEVNETNS) and NetNS is only a fallback for kernels without it.
	NetNS string
	// Offload asks for IFF_VNET_HDR and TUNSETOFFLOAD (csum, TSO4, TSO6).
	// If the kernel refuses, Open falls back to plain packets, Device.VnetHdr
	// reports false and Device.OffloadErr says why. Only with Name (not FD).
	Offload bool
	// Queues is how many queues (file descriptors) to open on the device;
	// 0 means 1. More than one makes the device multi-queue
	// (IFF_MULTI_QUEUE): the kernel then spreads the packets it sends us
	// over the queues by flow, each queue read by its own goroutine. Only
	// with Name: an fd:// device keeps the one queue it was given, and an
	// existing persistent device made without multi_queue keeps one too
	// (Device.QueueErr says why). At most MaxQueues.
	Queues int
}

// MaxQueues bounds Config.Queues: the kernel's MAX_TAP_QUEUES.
const MaxQueues = 256

// NetConfig is what Configure applies to a device.
type NetConfig struct {
	// MTU of the link; 0 leaves it.
	MTU int
	// Addresses to add (IPv6 ones with IFA_F_NODAD so they are usable at once).
	Addresses []netip.Prefix
	// DefaultRoutes adds 0.0.0.0/0 and ::/0 through the device.
	DefaultRoutes bool
}

// ErrNotTUN is returned by Open when fd://N is not a TUN device.
var ErrNotTUN = errors.New("not a TUN device")

// ErrNameInUse is returned by Open when the name belongs to an interface it
// cannot use: not a TUN, or a TUN already open by another process.
var ErrNameInUse = errors.New("device name in use")

// ErrIPv6Disabled is returned by Configure when IPv6 addresses or the ::/0
// route were skipped because IPv6 is disabled on the device (sysctl
// net.ipv6.conf.NAME.disable_ipv6=1). Everything else was applied, so a
// caller may log it as a warning and go on.
var ErrIPv6Disabled = errors.New("IPv6 is disabled on the device")

// ErrRouteExists is returned by Configure when a default route it was asked
// to add already exists through another interface of the namespace.
var ErrRouteExists = errors.New("the route exists")

// Device is an open TUN device.
type Device struct {
	fd int
	// queues are the fds of the extra queues of a multi-queue device, after
	// fd (which is queue 0).
	queues     []int
	queueErr   error
	name       string
	netns      string
	created    bool
	vnetHdr    bool
	offloadErr error
	ifindex    int
	// nl is a netlink socket opened inside the device's namespace, so that
	// Configure and Close never need to switch namespaces.
	nl *netlink.Handle

	mu     sync.Mutex
	closed bool
	// added is what Configure changed on a device Open did not create, for
	// Close to undo; a created device takes all of it with it.
	added changes
}

// Open opens (or creates) the device that cfg describes.
func Open(cfg Config) (*Device, error) {
	if cfg.Queues < 0 || cfg.Queues > MaxQueues {
		return nil, fmt.Errorf("tun: %d queues: want 1 to %d", cfg.Queues, MaxQueues)
	}
	if cfg.FD >= 0 {
		d, err := openFD(cfg)
		if err == nil && cfg.Queues > 1 {
			d.queueErr = fmt.Errorf("fd://%d: using the 1 queue inherited of the %d asked for: tungate attaches more queues only to devices it opens by name", cfg.FD, cfg.Queues)
		}
		return d, err
	}
	return openName(cfg)
}

// FD returns the device's file descriptor, in non-blocking mode and
// close-on-exec. It stays owned by the Device and is invalid after Close.
func (d *Device) FD() int { return d.fd }

// QueueFDs returns the fds of every queue the device was opened with, FD
// first; each is non-blocking, close-on-exec and owned by the Device like FD.
// A flow's packets arrive on the queue its packets were last written to
// (the kernel's automatic steering), else on one the kernel picks by hash.
func (d *Device) QueueFDs() []int { return append([]int{d.fd}, d.queues...) }

// QueueErr says why fewer queues than Config.Queues were opened (nil if
// all were), for the caller to log.
func (d *Device) QueueErr() error { return d.queueErr }

// Name returns the interface name.
func (d *Device) Name() string { return d.name }

// NetNS returns Config.NetNS as given ("" for the caller's namespace, and
// for fd:// devices whose namespace was asked from the kernel).
func (d *Device) NetNS() string { return d.netns }

// Created reports whether Open created the interface (rather than attaching
// to an existing persistent one or an inherited fd).
func (d *Device) Created() bool { return d.created }

// VnetHdr reports whether every packet read or written carries a
// virtio_net_hdr of VnetHdrLen bytes in front (Config.Offload granted, or an
// inherited fd opened with IFF_VNET_HDR). When true, TUN_F_CSUM, TUN_F_TSO4
// and TUN_F_TSO6 are enabled: reads may return TCP segments of up to 64 KiB
// (gso_type TCPV4/TCPV6) and packets whose transport checksum is left to
// fill in (flags NEEDS_CSUM, csum_start/csum_offset), even for small UDP.
// Writes take a header too; all zeros means a plain, complete packet.
func (d *Device) VnetHdr() bool { return d.vnetHdr }

// OffloadErr says why Config.Offload was not granted (nil if it was, or was
// not asked for), for the caller to log.
func (d *Device) OffloadErr() error { return d.offloadErr }

// Close closes the fd and removes what Open and Configure created (the
// interface itself only if Created). It is idempotent; later calls return nil.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	if !d.created {
		errs = append(errs, d.added.undo(d.nl, d.ifindex, d.name))
	}
	for _, fd := range d.QueueFDs() {
		if err := unix.Close(fd); err != nil {
			errs = append(errs, fmt.Errorf("close tun %q: %w", d.name, err))
		}
	}
	if d.created {
		errs = append(errs, d.deleteLink())
	}
	d.nl.Close()
	return errors.Join(errs...)
}

// deleteLink removes a created interface that outlived its fd, which happens
// only if someone made it persistent (TUNSETPERSIST) meanwhile. The interface
// is found by index so that an unrelated device that took the name since is
// left alone.
func (d *Device) deleteLink() error {
	link, err := d.nl.LinkByIndex(d.ifindex)
	if err != nil || link.Attrs().Name != d.name || link.Type() != "tuntap" {
		return nil // gone with the fd, as expected
	}
	if err := d.nl.LinkDel(link); err != nil {
		return fmt.Errorf("delete tun %q: %w", d.name, err)
	}
	return nil
}
