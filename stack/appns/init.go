package appns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// The setup process is PID 1 of the command's PID namespace, and stays so
// while the command runs: it starts the command as its child instead of
// becoming it. A PID 1 that is the command itself would be wrong in two
// ways: the kernel drops every signal PID 1 has no handler for (a shell's
// SIGTERM from tungate would do nothing), and nothing would reap the
// orphans the command leaves. So the setup process
//
//   - reaps every process that ends in the namespace,
//   - passes on the signals tungate asks it to (over the socket, not as
//     signals of its own: keys typed at the terminal already reach the
//     command, which shares tungate's process group, and must not arrive
//     twice),
//   - and exits with the command's status (128+N if signal N killed it)
//     when the command ends; the kernel then kills whatever else is left
//     in the namespace. It dies of SIGKILL with tungate (parent-death
//     signal), which has the same effect: nothing outlives tungate.

// signalMessage asks the setup process to send Signal to the command.
type signalMessage struct{ Signal int }

// swallowedSignals are the signals the setup process catches and ignores,
// so that none kills it: the Go runtime would otherwise exit on SIGINT,
// SIGTERM, SIGHUP and SIGQUIT. Catching, not ignoring: an ignored signal
// would stay ignored in the command.
func swallowedSignals() []os.Signal {
	return []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT,
		unix.SIGUSR1, unix.SIGUSR2, unix.SIGALRM, unix.SIGPIPE, unix.SIGTTIN, unix.SIGTTOU, unix.SIGTSTP}
}

// superviseCommand starts the command and serves as the namespace's init
// until it exits. It returns only if the command could not be started, with
// the status a shell would use (127 not found, 126 found but not runnable).
func superviseCommand(req *setupRequest) (int, error) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, swallowedSignals()...)
	go func() {
		for range sigs {
		}
	}()
	// The command inherits the capability sets of the thread that starts
	// it, so they are changed on a thread no other goroutine ever gets.
	runtime.LockOSThread()
	cmd, code, err := startCommand(req)
	if err != nil {
		return code, err
	}
	if err := send(childFD, reply{}); err != nil {
		// tungate is gone; the parent-death signal is on its way.
		os.Exit(1)
	}
	go passSignals(cmd.Process)
	os.Exit(reapUntil(cmd.Process.Pid))
	return 0, nil
}

// startCommand starts the command as the requested user, without the
// capabilities the setup held, in this process's process group.
func startCommand(req *setupRequest) (*exec.Cmd, int, error) {
	if len(req.Command) == 0 {
		return nil, 1, errors.New("no command")
	}
	path, err := exec.LookPath(req.Command[0])
	if err != nil {
		code := 127
		if errors.Is(err, os.ErrPermission) {
			code = 126
		}
		return nil, code, err
	}
	cmd := &exec.Cmd{Path: path, Args: req.Command, Env: os.Environ(),
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{}}
	if req.User != nil {
		cmd.Env = req.User.Env(cmd.Env)
		cmd.SysProcAttr.Credential = req.User.procCredential()
		// A command that is not root gets no capability back, not even
		// from a set-user-ID or file-capability program.
		if err := dropBounding(); err != nil {
			return nil, 126, err
		}
	}
	// Capabilities the setup needed (ambient ones, without root) must not
	// reach the command.
	if err := dropInheritable(); err != nil {
		return nil, 126, err
	}
	if err := cmd.Start(); err != nil {
		code := 126
		if errors.Is(err, unix.ENOENT) {
			code = 127
		}
		return nil, code, fmt.Errorf("exec %q: %w", req.Command[0], err)
	}
	return cmd, 0, nil
}

// passSignals sends the command the signals tungate asks for, until the
// socket closes.
func passSignals(p *os.Process) {
	for {
		var m signalMessage
		if _, err := recv(childFD, &m); err != nil {
			// tungate closed the socket: it is stopping, and kills this
			// process next.
			return
		}
		_ = p.Signal(syscall.Signal(m.Signal))
	}
}

// reapUntil waits for every child that ends (the namespace's orphans
// included) until pid does, and returns pid's status as a shell reports it.
func reapUntil(pid int) int {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			// No child left, which cannot be while pid lives.
			return 1
		case got != pid:
			continue
		case ws.Signaled():
			return 128 + int(ws.Signal())
		default:
			return ws.ExitStatus()
		}
	}
}

// dropBounding empties the calling thread's capability bounding set, which
// the processes it starts inherit.
func dropBounding() error {
	// The kernel may know more capabilities than this program: go on
	// until it says there are no more (EINVAL).
	for c := 0; ; c++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		switch {
		case errors.Is(err, unix.EINVAL):
			return nil
		case err != nil:
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
}
