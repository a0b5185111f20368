// Package caps drops the Linux capabilities a process no longer needs once
// it is set up, in every thread at once, and sets no_new_privs so that
// nothing it runs can gain privileges back.
//
// Capabilities belong to threads, not processes, and a Go program has many
// threads that the runtime starts and reuses at will; so every change is
// made with syscall.AllThreadsSyscall, which runs the system call on each
// thread with the world stopped. Threads started later inherit the reduced
// sets from their creator. The runtime refuses AllThreadsSyscall in a
// binary that uses cgo (it cannot see threads that C code made): Drop then
// fails with ErrCgo and changes nothing. Build with CGO_ENABLED=0.
package caps

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Set is a set of capabilities: bit N stands for capability N, as in the
// CapEff line of /proc/PID/status.
type Set uint64

// Of returns the set of the given capabilities (unix.CAP_NET_ADMIN, ...).
func Of(caps ...int) Set {
	var s Set
	for _, c := range caps {
		s |= 1 << c
	}
	return s
}

// Has reports whether capability c is in s.
func (s Set) Has(c int) bool { return s&(1<<c) != 0 }

// String is s as /proc/PID/status shows it: 16 hex digits.
func (s Set) String() string { return fmt.Sprintf("%016x", uint64(s)) }

// Names lists s's capabilities by their kernel names, lower case without
// the CAP_ prefix (net_admin, ...), for logs.
func (s Set) Names() string {
	var names []string
	for c := 0; c < 64; c++ {
		if s.Has(c) {
			names = append(names, name(c))
		}
	}
	return strings.Join(names, ",")
}

// ErrCgo is returned by Drop in a binary that uses cgo.
var ErrCgo = errors.New("this binary uses cgo, whose threads Go cannot change: build tungate with CGO_ENABLED=0")

// Drop reduces every thread of the process to the capabilities in keep
// (those of them it has): permitted and effective sets to keep, the
// inheritable and ambient sets emptied, every other capability removed
// from the bounding set (when the process may: it needs CAP_SETPCAP), and
// no_new_privs set. It returns the effective set it leaves.
func Drop(keep Set) (Set, error) {
	have, err := current()
	if err != nil {
		return 0, err
	}
	// Bounding set first: removing from it needs CAP_SETPCAP, which the
	// capset below may take away.
	if have.Has(unix.CAP_SETPCAP) {
		for c := 0; ; c++ {
			if keep.Has(c) {
				continue
			}
			_, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0)
			if errno == unix.EINVAL {
				break // no capability c or beyond on this kernel
			}
			if err := check("drop capability from the bounding set", errno); err != nil {
				return 0, err
			}
		}
	}
	_, _, errno := syscall.AllThreadsSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0)
	if err := check("clear the ambient capabilities", errno); err != nil {
		return 0, err
	}
	left := have & keep
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(left), Permitted: uint32(left)},
		{Effective: uint32(left >> 32), Permitted: uint32(left >> 32)},
	}
	_, _, errno = syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	if err := check("set capabilities", errno); err != nil {
		return 0, err
	}
	_, _, errno = syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0)
	if err := check("set no_new_privs", errno); err != nil {
		return 0, err
	}
	return left, nil
}

// current returns the calling thread's permitted set.
func current() (Set, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	return Set(data[0].Permitted) | Set(data[1].Permitted)<<32, nil
}

func check(op string, errno syscall.Errno) error {
	switch errno {
	case 0:
		return nil
	case unix.ENOTSUP:
		return fmt.Errorf("%s: %w", op, ErrCgo)
	}
	return fmt.Errorf("%s in every thread: %w", op, errno)
}

// name is capability c's kernel name without CAP_, lower case.
func name(c int) string {
	names := [...]string{"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill",
		"setgid", "setuid", "setpcap", "linux_immutable", "net_bind_service", "net_broadcast",
		"net_admin", "net_raw", "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot",
		"sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time",
		"sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap", "mac_override",
		"mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
		"checkpoint_restore"}
	if c < len(names) {
		return names[c]
	}
	return fmt.Sprintf("cap_%d", c)
}
