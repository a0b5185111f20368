package netlab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NS is a network namespace: one made by NewNS, or the one the test runs in
// (Root).
type NS struct {
	// Name is the name under /run/netns; empty for the root namespace.
	Name string
}

// Root returns the namespace the test process runs in. Commands "run in" it
// directly, and nothing about it is removed on cleanup.
func Root() *NS { return &NS{} }

// NewNS creates a uniquely named network namespace (prefix plus a unique
// suffix) with its loopback up. On t's cleanup every process still in it is
// killed and the namespace is deleted, which also removes its links.
func NewNS(t testing.TB, prefix string) *NS {
	t.Helper()
	ns := &NS{Name: UniqueName(prefix)}
	if _, err := runOutput(context.Background(), exec.Command("ip", "netns", "add", ns.Name)); err != nil {
		t.Fatalf("netlab: create namespace: %v", err)
	}
	t.Cleanup(func() { ns.remove(t) })
	ns.MustRun(t, "ip", "link", "set", "lo", "up")
	return ns
}

// remove kills what is left in the namespace, then deletes it.
func (n *NS) remove(t testing.TB) {
	out, _ := exec.Command("ip", "netns", "pids", n.Name).Output()
	for _, field := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(field); err == nil {
			t.Logf("netlab: killing pid %d left in namespace %s", pid, n.Name)
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	// A process that just died may still pin the namespace for a moment,
	// which only delays its disappearance; deletion of the name is immediate.
	if _, err := runOutput(context.Background(), exec.Command("ip", "netns", "del", n.Name)); err != nil {
		t.Errorf("netlab: delete namespace: %v", err)
	}
	removeEtcNetNS(t, n.Name)
}

// EtcNetNS is the directory whose files `ip netns exec NAME` mounts over
// /etc (tungate writes a resolv.conf there for a namespace it serves).
func EtcNetNS(name string) string { return filepath.Join("/etc/netns", name) }

// CleanEtcNetNS removes EtcNetNS(name) on t's cleanup, even if the test
// fails or tungate was killed before removing what it wrote. name must be
// a namespace name the test made unique (NewNS does this for its own).
func CleanEtcNetNS(t testing.TB, name string) {
	t.Cleanup(func() { removeEtcNetNS(t, name) })
}

func removeEtcNetNS(t testing.TB, name string) {
	if name == "" || strings.ContainsRune(name, '/') || name == "." || name == ".." {
		return
	}
	if err := os.RemoveAll(EtcNetNS(name)); err != nil {
		t.Errorf("netlab: %v", err)
	}
}

// IsRoot reports whether n is the namespace the test runs in.
func (n *NS) IsRoot() bool { return n.Name == "" }

// Path returns the namespace's file, as accepted by setns(2) and by
// tungate's --netns.
func (n *NS) Path() string {
	if n.IsRoot() {
		return "/proc/self/ns/net"
	}
	return "/run/netns/" + n.Name
}

// String returns the name, or "root".
func (n *NS) String() string {
	if n.IsRoot() {
		return "root"
	}
	return n.Name
}

// Exec returns a command that runs name inside the namespace (through
// "ip netns exec", which also gives it a matching /sys). The command is not
// started.
func (n *NS) Exec(ctx context.Context, name string, args ...string) *exec.Cmd {
	if n.IsRoot() {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs name inside the namespace and returns its combined output. The
// error names the command and includes the output.
func (n *NS) Run(ctx context.Context, name string, args ...string) (string, error) {
	return runOutput(ctx, n.Exec(ctx, name, args...))
}

// MustRun is Run with a 30 s limit that fails the test on error; for setup.
func (n *NS) MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := n.Run(ctx, name, args...)
	if err != nil {
		t.Fatalf("netlab: in namespace %s: %v", n, err)
	}
	return out
}

// Start starts name in the background inside the namespace. On t's cleanup
// it gets SIGTERM, then SIGKILL after 3 s, and is waited for.
func (n *NS) Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	p, err := startProc(n.Exec(context.Background(), name, args...))
	if err != nil {
		t.Fatalf("netlab: in namespace %s: %v", n, err)
	}
	t.Cleanup(func() { _ = p.Stop(3 * time.Second) })
	return p
}

// Do runs fn on an OS thread that has joined the namespace, and returns its
// error. Sockets fn creates stay in the namespace after Do returns, but
// goroutines fn starts run elsewhere: fn must make its sockets itself.
func (n *NS) Do(fn func() error) error {
	if n.IsRoot() {
		return fn()
	}
	target, err := os.Open(n.Path())
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", n, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is only unlocked once it is back home: if that fails,
		// the goroutine exits locked and the runtime discards the thread.
		home, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- fmt.Errorf("open own namespace: %w", err)
			return
		}
		defer home.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", n, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("leave namespace %s: %w", n, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// Dial connects to address from inside the namespace.
func (n *NS) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var conn net.Conn
	err := n.Do(func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, address)
		return err
	})
	return conn, err
}

// WaitTCP waits until a TCP connection to address from inside the namespace
// succeeds, polling every 20 ms, for at most timeout.
func (n *NS) WaitTCP(address string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, time.Second)
		conn, err := n.Dial(attempt, "tcp", address)
		cancelAttempt()
		if err == nil {
			return conn.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s in namespace %s: %w", address, n, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
