package tun

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// openFD implements Open for fd://N. On error the fd is left as it was found
// (apart from flags already set) and stays the caller's.
func openFD(cfg Config) (*Device, error) {
	fd := cfg.FD
	name, flags, err := getIff(fd)
	switch {
	case errors.Is(err, unix.EBADF):
		return nil, fmt.Errorf("fd://%d: %w: the parent process must pass this fd open and without close-on-exec", fd, err)
	case err != nil:
		// ENOTTY for files, pipes and sockets; EBADFD for /dev/net/tun
		// without TUNSETIFF.
		return nil, fmt.Errorf("fd://%d: %w: pass an fd opened on /dev/net/tun with TUNSETIFF (TUNGETIFF: %v)", fd, ErrNotTUN, err)
	case flags&unix.IFF_TAP != 0:
		return nil, fmt.Errorf("fd://%d: %w: %q is a TAP device (IFF_TAP): open it with IFF_TUN", fd, ErrNotTUN, name)
	case flags&unix.IFF_TUN == 0:
		return nil, fmt.Errorf("fd://%d: %w: %q has neither IFF_TUN nor IFF_TAP (flags %#x)", fd, ErrNotTUN, name, flags)
	}
	d := &Device{fd: fd, name: name, netns: cfg.NetNS, vnetHdr: flags&unix.IFF_VNET_HDR != 0}
	if err := d.attachNetlink(cfg.NetNS); err != nil {
		return nil, fmt.Errorf("fd://%d: %w", fd, err)
	}
	if err := d.checkNoPI(); err != nil {
		d.nl.Close()
		return nil, fmt.Errorf("fd://%d: %w", fd, err)
	}
	if err := d.setFDFlags(); err != nil {
		d.nl.Close()
		return nil, fmt.Errorf("fd://%d: %w", fd, err)
	}
	return d, nil
}

// setFDFlags enables the offloads VnetHdr promises and makes the fd
// non-blocking and close-on-exec.
func (d *Device) setFDFlags() error {
	if d.vnetHdr {
		// The parent may have left another header size or no offloads;
		// VnetHdr promises VnetHdrLen and the offloads, so set them.
		if err := enableOffload(d.fd); err != nil {
			return fmt.Errorf("tun %q has IFF_VNET_HDR but %w", d.name, err)
		}
	}
	if err := unix.SetNonblock(d.fd, true); err != nil {
		return fmt.Errorf("set non-blocking: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(d.fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return fmt.Errorf("set close-on-exec: %w", err)
	}
	return nil
}

// attachNetlink opens d.nl in the device's namespace and records its index.
func (d *Device) attachNetlink(spec string) error {
	ns, err := deviceNetNS(d.fd, spec)
	if err != nil {
		return err
	}
	if ns.IsOpen() {
		defer ns.Close()
	}
	if d.nl, err = netlinkIn(ns); err != nil {
		return err
	}
	if err := d.lookUpIndex(); err != nil {
		d.nl.Close()
		return fmt.Errorf("%w: if the device lives in another network namespace, name it with --netns", err)
	}
	return nil
}

// checkNoPI refuses a device whose packets carry the 4-byte packet-info
// header. TUNGETIFF cannot tell: it reports IFF_NOFILTER in the bit that
// IFF_NO_PI also uses, so the device's flag is asked from netlink.
func (d *Device) checkNoPI() error {
	link, err := d.nl.LinkByIndex(d.ifindex)
	if err != nil {
		return fmt.Errorf("tun %q: look up interface: %w", d.name, err)
	}
	tuntap, ok := link.(*netlink.Tuntap)
	if !ok {
		return fmt.Errorf("%w: interface %q is %s", ErrNotTUN, d.name, link.Type())
	}
	if tuntap.Flags&netlink.TUNTAP_NO_PI == 0 {
		return fmt.Errorf("tun %q was opened without IFF_NO_PI, so its packets carry a 4-byte header tungate does not read: open it with IFF_TUN|IFF_NO_PI", d.name)
	}
	return nil
}

// deviceNetNS returns the namespace the device behind fd lives in. The kernel
// knows it (TUNGETDEVNETNS, Linux 5.2+); older kernels fall back to spec, and
// to the current namespace (netns.None) if spec is empty.
func deviceNetNS(fd int, spec string) (netns.NsHandle, error) {
	nsfd, err := unix.IoctlRetInt(fd, unix.TUNGETDEVNETNS)
	if err == nil {
		return netns.NsHandle(nsfd), nil
	}
	if spec == "" {
		return netns.None(), nil
	}
	return openNetNS(spec)
}
