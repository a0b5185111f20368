// Package appns gives one command a network of its own: a new network
// namespace holding only lo and a TUN device (addresses, link up, default
// routes for IPv4 and IPv6); a private mount namespace where
// /etc/resolv.conf and /etc/nsswitch.conf are replaced without touching the
// host's files, sysfs shows the new network namespace and the host's
// resolver sockets are hidden (see ResolverSockets); and a PID namespace,
// with its own /proc, that dies as a whole with the caller. The caller
// serves the device (it gets the fd) and decides when the command runs.
//
// The namespaces are made by a re-executed copy of the program (the setup
// process, see ChildMain) started with CLONE_NEWNET|CLONE_NEWNS|CLONE_NEWPID,
// plus CLONE_NEWUSER when the caller is not root. Only that process can work
// inside them: a multithreaded Go process cannot join a user namespace, so
// the setup process opens and configures the device itself and passes its
// fd back over a socketpair (SCM_RIGHTS). It then starts the command and
// stays PID 1 of the PID namespace: it reaps orphans, passes on the
// signals the caller sends through Signal, and exits with the command's
// status. It dies with the caller (parent-death signal SIGKILL), and the
// kernel then kills every process left in the PID namespace, so no
// descendant of the command outlives the caller, even one killed with
// SIGKILL.
//
// Without root, the caller's uid and gid map to themselves inside the user
// namespace (as unshare --map-current-user does), so the command runs as the
// caller's own uid; the setup process gets CAP_NET_ADMIN and CAP_SYS_ADMIN
// in that namespace as ambient capabilities, and clears them before it
// starts the command.
package appns

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Config describes the namespace and the command.
type Config struct {
	// ChildArgs are the arguments (after the program name) that make the
	// program call ChildMain and nothing else. Required.
	ChildArgs []string
	// Device is the TUN interface name inside the namespace; "" means
	// "tun0".
	Device string
	// MTU of the device; 0 leaves the kernel's default.
	MTU int
	// Queues of the device (tun.Config.Queues); 0 means 1, more makes it
	// multi-queue and TUNQueues returns them all.
	Queues int
	// Addresses of the device inside the namespace.
	Addresses []netip.Prefix
	// ResolvConf, if set, is a file that the command sees as
	// /etc/resolv.conf (bind-mounted in its mount namespace only). It is
	// read before Start returns; the caller may remove it then.
	ResolvConf string
	// NSSwitch, if set, is a file that the command sees as
	// /etc/nsswitch.conf (see NSSwitchConf), like ResolvConf. Nothing is
	// mounted if the host has no /etc/nsswitch.conf.
	NSSwitch string
	// Hide are paths the command must not reach (see ResolverSockets): a
	// directory is covered with an empty tmpfs, anything else with
	// /dev/null, in the command's mount namespace only. Paths that do not
	// exist are skipped.
	Hide []string
	// Rootless creates a user namespace mapping the caller's uid and gid to
	// themselves. Required when the caller is not root.
	Rootless bool
	// Command is the command line to run (looked up in $PATH); nil runs no
	// command (the namespace lives until Close).
	Command []string
	// User, if set (root only), is who the command runs as.
	User *Credential
	// Stdin, Stdout and Stderr are handed to the command as they are, so a
	// terminal stays a terminal. Nil means /dev/null.
	Stdin, Stdout, Stderr *os.File
}

// Namespace is a running setup process (later the command) and the TUN
// device inside its namespace.
type Namespace struct {
	cmd    *exec.Cmd
	sock   int
	tunFDs []int    // the device's queues, the first one's fd first
	netns  *os.File // keeps the namespace (and its inode number) alive
	warn   string
	waitMu sync.Mutex
	waited bool
	state  *os.ProcessState

	closeOnce sync.Once
	closeErr  error
}

// ExecError is returned by Run when the command could not be started; Code
// is the exit status a shell would use (127 not found, 126 not runnable).
type ExecError struct {
	Code int
	Err  error
}

func (e *ExecError) Error() string { return e.Err.Error() }
func (e *ExecError) Unwrap() error { return e.Err }

// Start creates the namespaces and the device. When it returns, the device
// is configured, /etc/resolv.conf is in place for the command, and the
// command has not started; call Run to start it, or Close to give up.
func Start(cfg Config) (*Namespace, error) {
	if len(cfg.ChildArgs) == 0 {
		return nil, errors.New("appns: ChildArgs is required")
	}
	if cfg.Device == "" {
		cfg.Device = "tun0"
	}
	if !cfg.Rootless && os.Geteuid() != 0 {
		return nil, errors.New("create namespaces: not root: use a user namespace (Rootless)")
	}
	if cfg.Rootless {
		if cfg.User != nil {
			return nil, errors.New("run as another user: needs root")
		}
		if err := checkRootless(); err != nil {
			return nil, err
		}
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create socketpair: %w", err)
	}
	childSock := os.NewFile(uintptr(fds[1]), "appns-child")
	n := &Namespace{sock: fds[0]}
	n.cmd = setupCommand(&cfg, childSock)
	err = n.cmd.Start()
	childSock.Close()
	if err != nil {
		unix.Close(n.sock)
		return nil, explainStartError(err, cfg.Rootless)
	}
	if err := n.setUp(&cfg); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// setupCommand is the re-executed program, in new namespaces.
func setupCommand(cfg *Config, sock *os.File) *exec.Cmd {
	cmd := exec.Command("/proc/self/exe", cfg.ChildArgs...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = cfg.Stdin, cfg.Stdout, cfg.Stderr
	cmd.ExtraFiles = []*os.File{sock}
	attr := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		// Nothing must outlive tungate, which holds the namespace's only
		// way out: when PID 1 of the PID namespace dies, the kernel kills
		// every other process in it.
		Pdeathsig: syscall.SIGKILL,
	}
	if cfg.Rootless {
		uid, gid := os.Getuid(), os.Getgid()
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
		attr.GidMappingsEnableSetgroups = false
		attr.AmbientCaps = []uintptr{unix.CAP_NET_ADMIN, unix.CAP_SYS_ADMIN}
	}
	cmd.SysProcAttr = attr
	return cmd
}

// setUp sends the request and takes the device's fd.
func (n *Namespace) setUp(cfg *Config) error {
	req := setupRequest{
		Device:     cfg.Device,
		MTU:        cfg.MTU,
		Queues:     cfg.Queues,
		Addresses:  cfg.Addresses,
		ResolvConf: cfg.ResolvConf,
		NSSwitch:   cfg.NSSwitch,
		Hide:       cfg.Hide,
		Command:    cfg.Command,
		User:       cfg.User,
	}
	if err := send(n.sock, req); err != nil {
		return fmt.Errorf("namespace setup: send request: %w", err)
	}
	var rep reply
	fds, err := recv(n.sock, &rep)
	if err != nil {
		return n.setupDied(err)
	}
	if rep.Error != "" {
		closeAll(fds)
		return fmt.Errorf("namespace setup: %s", rep.Error)
	}
	if len(fds) < 1 || len(fds) > max(1, cfg.Queues) {
		closeAll(fds)
		return fmt.Errorf("namespace setup: got %d file descriptors, want the TUN device's %d queues", len(fds), max(1, cfg.Queues))
	}
	n.tunFDs = fds
	n.warn = rep.Warning
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", n.cmd.Process.Pid))
	if err != nil {
		return fmt.Errorf("open the new network namespace: %w", err)
	}
	n.netns = ns
	return nil
}

// setupDied explains a setup process that ended without an answer.
func (n *Namespace) setupDied(err error) error {
	if !errors.Is(err, io.EOF) {
		return fmt.Errorf("namespace setup: %w", err)
	}
	st := n.wait()
	return fmt.Errorf("namespace setup process ended without an answer (%s): check that this program handles its ChildArgs", st)
}

// TUN returns the device's fd (non-blocking, close-on-exec). It stays owned
// by the Namespace and is closed by Close.
func (n *Namespace) TUN() int { return n.tunFDs[0] }

// TUNQueues returns the fds of every queue of the device, TUN's first
// (one unless Config.Queues asked for more), owned like TUN's.
func (n *Namespace) TUNQueues() []int { return n.tunFDs }

// Warning is a problem the setup worked around (IPv6 disabled), or "".
func (n *Namespace) Warning() string { return n.warn }

// Pid is the setup process's: PID 1 of the command's PID namespace, as the
// caller's namespace numbers it.
func (n *Namespace) Pid() int { return n.cmd.Process.Pid }

// NetNSPath is a path that names the network namespace while it lives.
func (n *Namespace) NetNSPath() string { return fmt.Sprintf("/proc/%d/ns/net", n.Pid()) }

// Run starts the command and returns once it runs, or with an *ExecError
// if it could not be started.
func (n *Namespace) Run() error {
	if _, err := unix.Write(n.sock, goMessage); err != nil {
		return fmt.Errorf("start command: %w", err)
	}
	var rep reply
	_, err := recv(n.sock, &rep)
	switch {
	case errors.Is(err, io.EOF):
		return fmt.Errorf("start command: the namespace's init process ended (%s)", n.wait())
	case err != nil:
		return fmt.Errorf("start command: %w", err)
	case rep.Error != "":
		return &ExecError{Code: rep.Code, Err: errors.New(rep.Error)}
	}
	return nil
}

// Signal sends sig to the command, through the namespace's init process
// (which the kernel shields from signals it does not handle). Only after
// Run has started the command.
func (n *Namespace) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("pass signal %v: not a system signal", sig)
	}
	if err := send(n.sock, signalMessage{Signal: int(s)}); err != nil {
		return fmt.Errorf("pass signal %v: %w", sig, err)
	}
	return nil
}

// Wait waits for the command to exit (for the namespace's init process,
// which exits with the command's status: 128+N if signal N killed it). It
// may be called more than once.
func (n *Namespace) Wait() *os.ProcessState { return n.wait() }

func (n *Namespace) wait() *os.ProcessState {
	n.waitMu.Lock()
	defer n.waitMu.Unlock()
	if !n.waited {
		n.cmd.Wait()
		n.state, n.waited = n.cmd.ProcessState, true
	}
	return n.state
}

// Close kills whatever still runs in the namespace (the command, if it has
// not exited, and anything it left behind), waits for the command, and
// closes the device, which removes it. It is idempotent.
func (n *Namespace) Close() error {
	n.closeOnce.Do(func() {
		unix.Close(n.sock)
		n.cmd.Process.Kill()
		n.wait()
		if n.netns != nil {
			n.closeErr = killAllIn(n.netns)
			n.netns.Close()
		}
		closeAll(n.tunFDs)
	})
	return n.closeErr
}
