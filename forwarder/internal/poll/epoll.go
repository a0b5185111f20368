package poll

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Epoll is a bare epoll set whose own descriptor waits in the Go runtime's
// poller, so that the one goroutine running it (Run) parks like any network
// read while nothing is ready. Each registration carries 64 bits of data
// of its owner's choosing, never the descriptor, so an event for a socket
// closed meanwhile can be told from one for a socket that took its number.
// Set is built on it; the UDP session table uses it as it is.
type Epoll struct {
	file   *os.File
	rc     syscall.RawConn
	fd     int
	events [128]unix.EpollEvent
	n      int
	waitFn func(fd uintptr) bool // wait, bound once
}

// NewEpoll creates an epoll set; name labels its descriptor.
func NewEpoll(name string) (*Epoll, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("poll: create epoll set: %w", err)
	}
	// Non-blocking, so that the descriptor waits in the Go runtime's
	// poller like any socket and Run holds no thread.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("poll: epoll set non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("poll: epoll set: %w", err)
	}
	e := &Epoll{file: f, rc: rc, fd: fd}
	e.waitFn = e.wait
	return e, nil
}

// Ctl is epoll_ctl(2) with op on fd for events, carrying data.
func (e *Epoll) Ctl(op, fd int, events uint32, data uint64) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(uint32(data)), Pad: int32(uint32(data >> 32))}
	return unix.EpollCtl(e.fd, op, fd, &ev)
}

// Run hands each event's data and events to handle until Close.
func (e *Epoll) Run(handle func(data uint64, events uint32)) {
	for {
		if err := e.rc.Read(e.waitFn); err != nil {
			return
		}
		for _, ev := range e.events[:e.n] {
			handle(uint64(uint32(ev.Fd))|uint64(uint32(ev.Pad))<<32, ev.Events)
		}
	}
}

// wait collects ready events without blocking; false parks Run until the
// set is readable. It always asks the set, even after a round that left
// nothing to read: the runtime forgets a readiness it saw during the
// round when the next RawConn.Read begins, and the set's descriptor
// (edge-triggered in the runtime's poller) is not reported again for
// events that came meanwhile. The call never blocks (timeout 0), so it goes raw: a
// regular system call would hand the thread's P away and keep sysmon
// waking.
func (e *Epoll) wait(fd uintptr) bool {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&e.events[0])), uintptr(len(e.events)), 0, 0, 0)
	if errno != 0 || n == 0 {
		return false
	}
	e.n = int(n)
	return true
}

// Close closes the set; Run returns.
func (e *Epoll) Close() error { return e.file.Close() }
