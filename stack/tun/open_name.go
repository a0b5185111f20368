package tun

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// cloneDevice is the TUN/TAP clone device; each open of it is one queue.
const cloneDevice = "/dev/net/tun"

// openName implements Open for tun://NAME.
func openName(cfg Config) (*Device, error) {
	if err := checkName(cfg.Name); err != nil {
		return nil, err
	}
	ns := netns.None()
	if cfg.NetNS != "" {
		var err error
		if ns, err = openNetNS(cfg.NetNS); err != nil {
			return nil, err
		}
		defer ns.Close()
	}
	d := &Device{fd: -1, netns: cfg.NetNS}
	// The lookup and the open share the namespace switch: /dev/net/tun binds
	// the device to the namespace of the thread that opens it.
	err := inNetNS(ns, func() error {
		var err error
		if d.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
			return fmt.Errorf("open netlink socket: %w", err)
		}
		flags, err := flagsFor(d.nl, cfg.Name, cfg.Queues > 1)
		if err != nil {
			return err
		}
		d.created = flags&unix.IFF_TUN_EXCL != 0
		if cfg.Offload {
			if d.fd, d.name, d.offloadErr, err = openWithOffload(cfg.Name, flags); err != nil {
				return err
			}
			d.vnetHdr = d.fd >= 0
		}
		if !d.vnetHdr {
			if d.fd, d.name, err = openTUN(cfg.Name, flags); err != nil {
				return err
			}
		}
		return d.openQueues(cfg.Queues, flags)
	})
	if err == nil {
		err = d.lookUpIndex()
	}
	if err != nil {
		d.release()
		return nil, err
	}
	return d, nil
}

// checkName rejects names the kernel would refuse, with a message that says
// why (the kernel only says EINVAL).
func checkName(name string) error {
	if len(name) >= unix.IFNAMSIZ {
		return fmt.Errorf("tun name %q is %d bytes: Linux interface names have at most %d", name, len(name), unix.IFNAMSIZ-1)
	}
	if name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n") {
		return fmt.Errorf("tun name %q is not a valid interface name: use letters, digits, '-', '_' or '.'", name)
	}
	return nil
}

// flagsFor picks the TUNSETIFF flags for name from what already exists in the
// namespace of nl: IFF_TUN_EXCL if nothing does (so that Open never mistakes
// a device created meanwhile for its own), plus IFF_MULTI_QUEUE if
// multiQueue; IFF_MULTI_QUEUE if the existing persistent TUN was made
// multi-queue (the kernel refuses a mismatch).
func flagsFor(nl *netlink.Handle, name string, multiQueue bool) (uint16, error) {
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	created := flags | unix.IFF_TUN_EXCL
	if multiQueue {
		created |= unix.IFF_MULTI_QUEUE
	}
	if name == "" {
		return created, nil
	}
	link, err := nl.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return created, nil
	}
	if err != nil {
		return 0, fmt.Errorf("tun %q: look up existing interface: %w", name, err)
	}
	tuntap, ok := link.(*netlink.Tuntap)
	if !ok {
		return 0, fmt.Errorf("tun %q: %w by a non-TUN interface (%s): pick another name with --device tun://NAME", name, ErrNameInUse, link.Type())
	}
	if tuntap.Mode != netlink.TUNTAP_MODE_TUN {
		return 0, fmt.Errorf("tun %q: %w by a TAP interface: pick another name with --device tun://NAME, or recreate it with \"ip tuntap add %s mode tun\"", name, ErrNameInUse, name)
	}
	if tuntap.Flags&netlink.TUNTAP_MULTI_QUEUE != 0 {
		flags |= unix.IFF_MULTI_QUEUE
	}
	return flags, nil
}

// openQueues opens the queues after the first, up to want in all, on a
// device opened with flags. A device that is not multi-queue (an existing
// persistent one) keeps its one queue, and d.queueErr says so.
func (d *Device) openQueues(want int, flags uint16) error {
	if want <= 1 {
		return nil
	}
	if flags&unix.IFF_MULTI_QUEUE == 0 {
		d.queueErr = fmt.Errorf("tun %q was created without multi_queue: using 1 queue of the %d asked for (recreate it with \"ip tuntap add %s mode tun multi_queue\")", d.name, want, d.name)
		return nil
	}
	// The device exists now: attach to it, never create.
	flags &^= unix.IFF_TUN_EXCL
	if d.vnetHdr {
		flags |= unix.IFF_VNET_HDR
	}
	for len(d.queues) < want-1 {
		fd, _, err := openTUN(d.name, flags)
		if err == nil && d.vnetHdr {
			if err = enableOffload(fd); err != nil {
				unix.Close(fd)
			}
		}
		if err != nil {
			return fmt.Errorf("tun %q: open queue %d of %d: %w", d.name, len(d.queues)+2, want, err)
		}
		d.queues = append(d.queues, fd)
	}
	return nil
}

// openWithOffload opens the device with IFF_VNET_HDR and the offloads on. If
// the offloads are refused, it closes the fd (which takes a device it created
// with it) and returns fd -1 and the reason as offloadErr, for the caller to
// open the device plain; err is for failures that a plain open would share.
func openWithOffload(name string, flags uint16) (fd int, realName string, offloadErr, err error) {
	fd, realName, err = openTUN(name, flags|unix.IFF_VNET_HDR)
	if err != nil {
		return -1, "", nil, err
	}
	if err := enableOffload(fd); err != nil {
		unix.Close(fd)
		return -1, "", fmt.Errorf("tun %q: offload refused, using plain packets: %w", realName, err), nil
	}
	return fd, realName, nil, nil
}

// openTUN opens the clone device non-blocking and close-on-exec, and
// attaches it to name with flags.
func openTUN(name string, flags uint16) (int, string, error) {
	fd, err := unix.Open(cloneDevice, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV):
		return -1, "", fmt.Errorf("open %s: %w: load the TUN driver with \"modprobe tun\"", cloneDevice, err)
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return -1, "", fmt.Errorf("open tun %q: permission denied on %s: run as root or give CAP_NET_ADMIN (%w)", name, cloneDevice, err)
	case err != nil:
		return -1, "", fmt.Errorf("open %s: %w", cloneDevice, err)
	}
	realName, err := setIff(fd, name, flags)
	if err != nil {
		unix.Close(fd)
		return -1, "", setIffError(name, flags, err)
	}
	return fd, realName, nil
}

// setIffError turns a TUNSETIFF errno into an error that says what to do.
func setIffError(name string, flags uint16, err error) error {
	switch {
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return fmt.Errorf("open tun %q: permission denied: run as root or give CAP_NET_ADMIN (%w)", name, err)
	case errors.Is(err, unix.EBUSY) && flags&unix.IFF_TUN_EXCL != 0:
		return fmt.Errorf("tun %q: %w: an interface of that name appeared while opening: pick another name with --device tun://NAME (%w)", name, ErrNameInUse, err)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("tun %q: %w: the TUN device is already open by another process: stop it or pick another name with --device tun://NAME (%w)", name, ErrNameInUse, err)
	default:
		return fmt.Errorf("open tun %q: TUNSETIFF: %w", name, err)
	}
}

// lookUpIndex records the interface index, by which Configure and Close find
// the device even if it is renamed.
func (d *Device) lookUpIndex() error {
	link, err := d.nl.LinkByName(d.name)
	if err != nil {
		return fmt.Errorf("tun %q: look up opened interface: %w", d.name, err)
	}
	d.ifindex = link.Attrs().Index
	return nil
}

// release frees what a partially opened Device holds; the fd closing takes a
// created interface with it.
func (d *Device) release() {
	for _, fd := range d.queues {
		unix.Close(fd)
	}
	if d.fd >= 0 {
		unix.Close(d.fd)
	}
	if d.nl != nil {
		d.nl.Close()
	}
}
