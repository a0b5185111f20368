package main

import (
	"errors"
	"log/slog"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/cmd/internal/caps"
	"github.com/tungate/tungate/cmd/internal/seccomp"
)

// Once set up, tungate keeps only the capabilities its remaining work
// needs (README, "Containment"):
//
//   - CAP_NET_ADMIN: the gateway's clean-up at exit (removing the
//     addresses and routes it added to a device it did not create, and a
//     created device made persistent meanwhile), and SO_MARK for --fwmark.
//     `tungate run` needs it only for --fwmark: its device goes away with
//     its fd.
//   - CAP_NET_RAW: raw ICMP sockets for echo requests, where the host's
//     ping_group_range allows no ping socket. Not with a proxy, which
//     carries no ICMP.
//   - with `run --netns-path` only: CAP_SYS_ADMIN to unmount the path at
//     exit, CAP_SYS_PTRACE and CAP_KILL to find and kill what entered the
//     namespace (nsenter, ip netns exec) as other users or with more
//     capabilities.
//
// CAP_NET_BIND_SERVICE is not kept: --publish binds its ports during
// set-up. Everything else goes, and no_new_privs is set.

// gatewayCaps is what the gateway keeps after set-up.
func gatewayCaps(cfg *gatewayConfig) caps.Set {
	keep := caps.Of(unix.CAP_NET_ADMIN)
	if !cfg.proxy.proxied() {
		keep |= caps.Of(unix.CAP_NET_RAW)
	}
	return keep
}

// runCaps is what `tungate run` keeps after set-up.
func runCaps(rc *runConfig) caps.Set {
	var keep caps.Set
	if rc.gw.fwmark != 0 {
		keep |= caps.Of(unix.CAP_NET_ADMIN)
	}
	if !rc.gw.proxy.proxied() {
		keep |= caps.Of(unix.CAP_NET_RAW)
	}
	if rc.netnsPath != "" {
		keep |= caps.Of(unix.CAP_SYS_ADMIN, unix.CAP_SYS_PTRACE, unix.CAP_KILL)
	}
	return keep
}

// dropPrivileges keeps only keep, sets no_new_privs and, unless
// --seccomp=false, confines every thread to the system calls the rest of
// tungate's life makes. A failure leaves tungate as privileged as it
// started, which is worth a warning but not worth stopping for.
func dropPrivileges(keep caps.Set, filter bool, log *slog.Logger) {
	dropCaps(keep, log)
	confine(filter, log)
}

func dropCaps(keep caps.Set, log *slog.Logger) {
	left, err := caps.Drop(keep)
	switch {
	case errors.Is(err, caps.ErrCgo):
		log.Warn("capabilities not dropped: every one tungate started with stays", "err", err)
	case err != nil:
		log.Warn("capabilities not dropped: every one tungate started with stays; run tungate with CAP_SETPCAP to let it drop them", "err", err)
	default:
		log.Debug("dropped capabilities", "kept", left.Names(), "cap_eff", left.String(), "no_new_privs", true)
	}
}

// seccompEnv set to "audit" lets every system call through and only logs
// in the kernel log those the filter would refuse: a hidden knob for
// finding what the list lacks (README, "Least privilege"), not a flag.
const seccompEnv = "TUNGATE_SECCOMP"

// confine installs the seccomp filter, if on, and says so in one line.
func confine(on bool, log *slog.Logger) {
	if !on {
		log.Debug("seccomp filter off (--seccomp=false)")
		return
	}
	mode := seccomp.Enforce
	if os.Getenv(seccompEnv) == "audit" {
		mode = seccomp.Audit
	}
	f, err := seccomp.New(mode)
	if errors.Is(err, seccomp.ErrUnsupported) {
		log.Debug("seccomp filter off: no system call list for this architecture", "arch", runtime.GOARCH)
		return
	}
	if err == nil {
		err = f.Install()
	}
	if err != nil {
		log.Warn("seccomp filter not installed: every system call stays allowed", "err", err)
		return
	}
	log.Debug("seccomp filter installed", "mode", f.Mode().String(), "calls_allowed", f.Calls(),
		"bpf_instructions", f.Len(), "others_fail_with", "EPERM")
}
