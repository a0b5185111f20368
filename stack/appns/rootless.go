package appns

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Knobs that forbid unprivileged user namespaces, with what to do about
// each. A knob that does not exist on this kernel is no obstacle.
var userNSKnobs = []struct {
	path, forbidding, fix string
}{
	{"/proc/sys/kernel/unprivileged_userns_clone", "0", "sysctl -w kernel.unprivileged_userns_clone=1"},
	{"/proc/sys/user/max_user_namespaces", "0", "sysctl -w user.max_user_namespaces=15000"},
	{"/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1", "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or give tungate an AppArmor profile that allows userns"},
}

// checkRootless says exactly what the machine lacks for running without
// root, before anything is created.
func checkRootless() error {
	for _, k := range userNSKnobs {
		b, err := os.ReadFile(k.path)
		if err == nil && strings.TrimSpace(string(b)) == k.forbidding {
			return fmt.Errorf("running without root needs unprivileged user namespaces, which this machine forbids (%s is %s): run as root, or enable them with %s", k.path, k.forbidding, k.fix)
		}
	}
	if err := unix.Access("/dev/net/tun", unix.R_OK|unix.W_OK); err != nil {
		mode := ""
		if fi, serr := os.Stat("/dev/net/tun"); serr == nil {
			mode = fmt.Sprintf(" (its mode is %04o)", fi.Mode().Perm())
		}
		return fmt.Errorf("running without root needs read and write access to /dev/net/tun%s: %w: run as root, or make it mode 0666 (chmod 0666 /dev/net/tun; the default on most systems)", mode, err)
	}
	return nil
}

// explainStartError adds what to do to a failure to create the namespaces.
func explainStartError(err error, rootless bool) error {
	switch {
	case rootless && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)):
		return fmt.Errorf("create user and network namespaces: %w: this machine does not let unprivileged users create user namespaces (a sysctl, seccomp or LSM policy forbids it): run as root", err)
	case rootless && errors.Is(err, unix.ENOSPC):
		return fmt.Errorf("create user namespace: %w: the user namespace limit is reached (sysctl user.max_user_namespaces)", err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("create network and mount namespaces: %w: needs root (CAP_SYS_ADMIN)", err)
	}
	return fmt.Errorf("create namespaces: %w", err)
}
