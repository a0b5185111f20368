// Package seccomp confines a process, once it is set up, to an allow-list
// of system calls: a seccomp filter that the kernel applies to every
// thread, now and later, and that no thread can remove.
//
// A call off the list fails with EPERM (Enforce) rather than killing the
// process: tungate reports a failed operation as it reports any other
// error, so a rare path that the list lacks costs that one operation (one
// flow, one log line), where SECCOMP_RET_KILL_PROCESS would end every flow
// at once. Each refusal is also written to the kernel log (an audit record
// of type 1326 naming the call's number), so a missing call shows itself.
// Audit allows every call and only logs those off the list: the way to
// find what the list lacks after a change of Go, gVisor or a dependency.
//
// The filter is assembled by github.com/elastic/go-seccomp-bpf from the
// names in allow.go, per architecture (amd64 and arm64; on others New
// returns ErrUnsupported). Its check on the architecture makes a call
// through another ABI (x32, 32-bit) fail too.
package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	bpfgen "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// ErrUnsupported is returned by New on an architecture with no list.
var ErrUnsupported = errors.New("no system call list for this architecture")

// Mode is what the filter does with a call off the list.
type Mode int

const (
	// Enforce fails the call with EPERM and logs it in the kernel log.
	Enforce Mode = iota
	// Audit lets the call through and logs it in the kernel log.
	Audit
)

// String names the mode for logs.
func (m Mode) String() string {
	if m == Audit {
		return "audit"
	}
	return "enforce"
}

// Filter is an assembled filter for the running architecture.
type Filter struct {
	prog  []unix.SockFilter
	calls int
	mode  Mode
}

// Allowed returns the names of the system calls allowed on goarch, in the
// order the filter tests them.
func Allowed(goarch string) ([]string, error) {
	extra, ok := archCalls(goarch)
	if !ok {
		return nil, fmt.Errorf("%s: %w", goarch, ErrUnsupported)
	}
	var names []string
	for _, group := range common() {
		names = append(names, group...)
	}
	return append(names, extra...), nil
}

// New assembles the filter for the running architecture.
func New(m Mode) (*Filter, error) {
	names, err := Allowed(runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	deny := bpfgen.ActionErrno // EPERM: the library adds it
	if m == Audit {
		deny = bpfgen.ActionLog
	}
	policy := bpfgen.Policy{
		DefaultAction: deny,
		Syscalls:      []bpfgen.SyscallGroup{{Names: names, Action: bpfgen.ActionAllow}},
	}
	insts, err := policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("assemble the seccomp filter: %w", err)
	}
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return nil, fmt.Errorf("assemble the seccomp filter: %w", err)
	}
	prog := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		prog[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return &Filter{prog: prog, calls: len(names), mode: m}, nil
}

// Calls is the number of system calls the filter allows.
func (f *Filter) Calls() int { return f.calls }

// Len is the filter's length in BPF instructions.
func (f *Filter) Len() int { return len(f.prog) }

// Mode is what the filter does with a call off the list.
func (f *Filter) Mode() Mode { return f.mode }

// Install applies the filter to every thread of the process
// (SECCOMP_FILTER_FLAG_TSYNC) and to every thread and child started
// later, for good. It sets no_new_privs first, which the kernel requires
// of a process without CAP_SYS_ADMIN. A child forked before Install is not
// filtered.
func (f *Filter) Install() error {
	// no_new_privs belongs to the thread: set it on the one that loads the
	// filter (TSYNC then sets it on the others).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(f.prog)), Filter: &f.prog[0]}
	flags := uintptr(unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_LOG)
	tid, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	switch {
	case errno != 0:
		return fmt.Errorf("install the seccomp filter: %w", errno)
	case tid != 0:
		// TSYNC's answer when a thread has a filter of its own that
		// the new one cannot replace.
		return fmt.Errorf("install the seccomp filter: thread %d cannot take it", tid)
	}
	return nil
}
