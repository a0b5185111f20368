package seccomp

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// childEnv makes the test binary the child of TestInstall.
const childEnv = "TUNGATE_SECCOMP_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// TestAllowedNamesExist assembles nothing but checks, for every
// architecture with a list, that each name is a system call there and is
// listed once.
func TestAllowedNamesExist(t *testing.T) {
	for goarch, info := range map[string]*arch.Info{"amd64": arch.X86_64, "arm64": arch.AARCH64} {
		names, err := Allowed(goarch)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, n := range names {
			if _, ok := info.SyscallNames[n]; !ok {
				t.Errorf("%s: %q is no system call there", goarch, n)
			}
			if seen[n] {
				t.Errorf("%s: %q listed twice", goarch, n)
			}
			seen[n] = true
		}
		for _, n := range forbidden {
			if seen[n] {
				t.Errorf("%s: %q is allowed", goarch, n)
			}
		}
	}
	if _, err := Allowed("mips"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Allowed(mips) = %v, want ErrUnsupported", err)
	}
}

// forbidden are calls the filter must refuse: what an attacker in the
// process would want, and nothing tungate does once set up.
var forbidden = []string{"execve", "execveat", "ptrace", "mount", "setns", "unshare",
	"kexec_load", "init_module", "finit_module", "bpf", "capset", "setuid", "chroot",
	"pivot_root", "process_vm_writev", "perf_event_open", "keyctl", "io_uring_setup"}

func TestNewAssembles(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("no list for", runtime.GOARCH)
	}
	for _, m := range []Mode{Enforce, Audit} {
		f, err := New(m)
		if err != nil {
			t.Fatal(err)
		}
		names, _ := Allowed(runtime.GOARCH)
		// One test per call, the checks on the architecture and on x32,
		// and the two returns: a list, not a tree.
		if f.Calls() != len(names) || f.Len() < f.Calls()+3 || f.Len() > f.Calls()+12 {
			t.Errorf("%v: %d calls in %d instructions", m, f.Calls(), f.Len())
		}
	}
}

// TestInstall runs a child (this test binary again) that installs the
// filter while other threads run, then makes allowed and refused calls on
// every thread. Under -race (a cgo binary) the child's new threads are
// glibc's, which abort the process unless rseq is allowed.
func TestInstall(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("no list for", runtime.GOARCH)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, want := range []string{"Seccomp:\t2", "Seccomp_filters:\t1", "refused: 6", "allowed: ok"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child's output lacks %q:\n%s", want, out)
		}
	}
}

// child installs the filter with threads already running, then reports.
func child() int {
	f, err := New(Enforce)
	if err != nil {
		println("new:", err.Error())
		return 1
	}
	// Threads that exist before Install must be filtered too.
	var ready, installed, done sync.WaitGroup
	results := make([]int, 4)
	for i := range results {
		ready.Add(1)
		installed.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			ready.Done()
			installed.Wait()
			results[i] = refusedCalls()
		}()
	}
	ready.Wait()
	if err := f.Install(); err != nil {
		println("install:", err.Error())
		return 1
	}
	for range results {
		installed.Done()
	}
	done.Wait()
	results = append(results, refusedCalls())
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Seccomp") {
			println(line)
		}
	}
	// Every thread refused the same number of calls.
	if slices.Min(results) == slices.Max(results) {
		println("refused:", results[0])
	}
	if allowedCalls() {
		println("allowed: ok")
	}
	return 0
}

// refusedCalls makes six calls off the list, with arguments that make
// each fail otherwise with something other than EPERM (as root too), and
// counts those that failed with EPERM.
func refusedCalls() int {
	path, _ := unix.BytePtrFromString("/nonexistent-tungate-seccomp")
	calls := []func() unix.Errno{
		func() unix.Errno { // ENOENT unfiltered
			_, _, e := unix.Syscall6(unix.SYS_MOUNT, uintptr(unsafe.Pointer(path)), uintptr(unsafe.Pointer(path)), 0, 0, 0, 0)
			return e
		},
		func() unix.Errno { // ESRCH unfiltered: no such process
			_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKDATA, 0x7fffffff, 0, 0, 0, 0)
			return e
		},
		func() unix.Errno { // EINVAL unfiltered: too many segments
			_, _, e := unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 1<<20, 0, 0, 0, 0)
			return e
		},
		func() unix.Errno { // EFAULT unfiltered
			_, _, e := unix.Syscall(unix.SYS_INIT_MODULE, 0, 0, 0)
			return e
		},
		func() unix.Errno { // EINVAL or EFAULT unfiltered
			_, _, e := unix.Syscall(unix.SYS_BPF, 1<<30, 0, 0)
			return e
		},
		func() unix.Errno { // ENOENT unfiltered
			_, _, e := unix.Syscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(path)), 0, 0)
			return e
		},
	}
	n := 0
	for _, call := range calls {
		if call() == unix.EPERM {
			n++
		}
	}
	return n
}

// allowedCalls reports whether calls on the list still work.
func allowedCalls() bool {
	fds := make([]int, 2)
	if err := unix.Pipe2(fds, unix.O_CLOEXEC); err != nil {
		println("pipe2:", err.Error())
		return false
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if _, err := unix.Write(fds[1], []byte("x")); err != nil {
		println("write:", err.Error())
		return false
	}
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		println("socket:", err.Error())
		return false
	}
	unix.Close(s)
	return unix.Getpid() == os.Getpid()
}
