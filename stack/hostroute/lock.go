package hostroute

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// lockName is the abstract unix socket that a Routing holds while it lives.
// Abstract socket names belong to a network namespace, and the kernel
// releases the name when the holder dies however it dies, so a crashed
// instance never leaves a stale lock. Its listen(2) records the holder's
// credentials, which a refused instance reads with SO_PEERCRED to name it.
const lockName = "@tungate-auto-route"

// instanceLock is the held name.
type instanceLock struct{ fd int }

// acquireLock takes the namespace's name, or returns a *RunningError naming
// the process that holds it.
func acquireLock() (*instanceLock, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("auto-route: lock: %w", err)
	}
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: lockName})
	if errors.Is(err, unix.EADDRINUSE) {
		unix.Close(fd)
		return nil, &RunningError{PID: lockHolder()}
	}
	if err == nil {
		// A small backlog: only refused instances ever connect, and they
		// never wait to be accepted.
		err = unix.Listen(fd, 16)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("auto-route: lock: %w", err)
	}
	return &instanceLock{fd: fd}, nil
}

// lockHolder returns the pid of the process holding the name, or 0.
func lockHolder() int {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: lockName}); err != nil {
		return 0
	}
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return 0
	}
	return int(cred.Pid)
}

// release gives the name back; nil-safe and idempotent.
func (l *instanceLock) release() {
	if l == nil || l.fd < 0 {
		return
	}
	unix.Close(l.fd)
	l.fd = -1
}
