package tun

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// setIff attaches fd to the interface name (creating it if needed) with the
// given IFF_* flags and returns the interface's name, which the kernel picks
// when name is empty.
func setIff(fd int, name string, flags uint16) (string, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return "", err
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return "", err
	}
	return ifr.Name(), nil
}

// getIff returns the name and IFF_* flags of the interface fd is attached to.
func getIff(fd int) (string, uint16, error) {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return "", 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
		return "", 0, err
	}
	return ifr.Name(), ifr.Uint16(), nil
}

// enableOffload makes the virtio_net_hdr VnetHdrLen bytes long and turns on
// the offloads in offloadFlags, on an fd attached with IFF_VNET_HDR.
func enableOffload(fd int) error {
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, VnetHdrLen); err != nil {
		return fmt.Errorf("TUNSETVNETHDRSZ %d: %w", VnetHdrLen, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, offloadFlags); err != nil {
		return fmt.Errorf("TUNSETOFFLOAD csum,tso4,tso6: %w", err)
	}
	return nil
}

// HasVnetHdr reports whether the TUN fd was opened with IFF_VNET_HDR, so
// that every packet on it carries a virtio_net_hdr of VnetHdrLen bytes. Any
// holder of the fd may ask; no privilege is needed.
func HasVnetHdr(fd int) (bool, error) {
	_, flags, err := getIff(fd)
	if err != nil {
		return false, fmt.Errorf("TUNGETIFF on fd %d: %w", fd, err)
	}
	return flags&unix.IFF_VNET_HDR != 0, nil
}
