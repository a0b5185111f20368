package appns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/stack/tun"
)

// resolvConfPath is the file CMD's resolver reads.
const resolvConfPath = "/etc/resolv.conf"

// ChildMain is the setup process: the program calls it, and nothing else,
// when it finds Config.ChildArgs on its command line. It runs inside the new
// namespaces, sets them up, hands the TUN device to the parent, and then
// becomes the command (or exits). It never returns.
func ChildMain() {
	unix.CloseOnExec(childFD)
	var req setupRequest
	if _, err := recv(childFD, &req); err != nil {
		// The parent is gone or broken; nobody is left to tell.
		os.Exit(1)
	}
	fds, warn, err := setUp(&req)
	if err != nil {
		send(childFD, reply{Error: err.Error()})
		os.Exit(1)
	}
	if err := send(childFD, reply{Warning: warn}, fds...); err != nil {
		os.Exit(1)
	}
	// The parent has its own copies now. Not tun.Device.Close: that would
	// delete the interface the parent is about to serve.
	for _, fd := range fds {
		unix.Close(fd)
	}
	if _, err := recv(childFD, nil); err != nil {
		// Socket closed: no command (--netns-path ended), or the parent
		// gave up.
		os.Exit(0)
	}
	code, err := superviseCommand(&req)
	send(childFD, reply{Error: err.Error(), Code: code})
	os.Exit(code)
}

// setUp makes the mount namespace private, brings lo up, creates and
// configures the TUN device, and gives CMD its resolv.conf. It returns the
// fds of the device's queues and a warning for the parent to log.
func setUp(req *setupRequest) (fds []int, warning string, err error) {
	// Mounts made from here on must not propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, "", fmt.Errorf("make mounts private in the new mount namespace: %w", err)
	}
	// This process is PID 1 of a new PID namespace: the command's ps,
	// pgrep and kill see its processes only.
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return nil, "", fmt.Errorf("mount /proc for the new PID namespace: %w", err)
	}
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		return nil, "", fmt.Errorf("bring up lo in the new network namespace: %w", err)
	}
	dev, err := tun.Open(tun.Config{Name: req.Device, FD: -1, Offload: true, Queues: req.Queues})
	if err != nil {
		return nil, "", fmt.Errorf("%w%s", err, tunHint(err))
	}
	err = dev.Configure(tun.NetConfig{MTU: req.MTU, Addresses: req.Addresses, DefaultRoutes: true})
	switch {
	case errors.Is(err, tun.ErrIPv6Disabled):
		warning = err.Error()
	case err != nil:
		return nil, "", err
	}
	if err := isolateFiles(req); err != nil {
		return nil, "", err
	}
	if err := dev.QueueErr(); err != nil {
		warning = strings.TrimPrefix(warning+"; "+err.Error(), "; ")
	}
	return dev.QueueFDs(), warning, nil
}

// tunHint says what is missing when the device cannot be opened without
// root: /dev/net/tun is checked against the caller's own uid.
func tunHint(err error) string {
	if os.Geteuid() != 0 && errors.Is(err, unix.EACCES) {
		return ": without root, /dev/net/tun must be readable and writable by your user (mode 0666, the default on most systems)"
	}
	return ""
}

// isolateFiles makes the command's view of the files that describe its
// network tell the truth, in this mount namespace only: sysfs for the new
// network namespace (/sys/class/net lists lo and the device), the host's
// resolver sockets covered, and the namespace's resolv.conf and
// nsswitch.conf over the host's (which are never changed).
func isolateFiles(req *setupRequest) error {
	// Targets are resolved before anything is covered: on systemd hosts
	// /etc/resolv.conf points into a directory that gets hidden.
	var resolvTarget, nssTarget string
	if req.ResolvConf != "" {
		var err error
		if resolvTarget, err = filepath.EvalSymlinks(resolvConfPath); err != nil {
			return fmt.Errorf("give the command its resolv.conf: %w: %s must exist (a bind mount covers it, the file is not changed)", err, resolvConfPath)
		}
	}
	if req.NSSwitch != "" {
		// Without the file, glibc's default (dns, files) asks no other
		// service either.
		t, err := filepath.EvalSymlinks(NSSwitchPath)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("give the command its nsswitch.conf: %w", err)
		}
		nssTarget = t
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount sysfs for the new network namespace: %w", err)
	}
	hidden, err := hidePaths(req.Hide)
	if err != nil {
		return err
	}
	if resolvTarget != "" {
		if err := bindOver(req.ResolvConf, resolvTarget, hidden); err != nil {
			return fmt.Errorf("give the command its resolv.conf: %w", err)
		}
	}
	if nssTarget != "" {
		if err := bindOver(req.NSSwitch, nssTarget, hidden); err != nil {
			return fmt.Errorf("give the command its nsswitch.conf: %w", err)
		}
	}
	return nil
}

// dropInheritable clears the ambient and inheritable capability sets of
// the calling thread, so that a command that is not root starts with no
// capability at all.
func dropInheritable() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clear inheritable capabilities: %w", err)
	}
	return nil
}
