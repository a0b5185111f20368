// Package poll waits for many sockets at once without a goroutine per
// socket: one epoll set, read by one goroutine, calls back each socket's
// owner when the socket becomes readable. An idle TCP flow parks its
// upstream socket here and holds no goroutine (whose stack and record are
// most of what an idle flow costs).
//
// A socket is armed for one callback at a time (EPOLLONESHOT) and always
// reached through its syscall.RawConn's Control, which holds the
// descriptor open, so the set never touches a descriptor number after it
// was closed and reused. Events carry a slot number and a generation,
// never the descriptor, so an event that was already queued for a socket
// closed meanwhile finds no one to call.
package poll

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// readable is what a watch waits for: data, the peer's FIN, or an error
// (EPOLLERR and EPOLLHUP are always reported).
const readable = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// Set is one epoll set and the goroutine that reads it, owned by whoever
// called New and stopped by Close.
type Set struct {
	ep   *Epoll
	done chan struct{}

	mu     sync.Mutex
	closed bool
	// table holds the armed watches.
	table Slots[*Watch]
}

// New creates a Set and starts its goroutine.
func New() (*Set, error) {
	ep, err := NewEpoll("poll-epoll")
	if err != nil {
		return nil, err
	}
	s := &Set{ep: ep, done: make(chan struct{})}
	go s.run()
	return s, nil
}

// Close stops the set's goroutine and waits for it, then calls back every
// watch still armed, so that no owner is left parked. It is idempotent.
func (s *Set) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.ep.Close() // wakes run: its read fails as closed
	<-s.done
	s.mu.Lock()
	armed := s.table.Drop()
	for _, w := range armed {
		w.armed = false
	}
	s.mu.Unlock()
	for _, w := range armed {
		w.fn()
	}
	if err != nil {
		return fmt.Errorf("poll: close epoll set: %w", err)
	}
	return nil
}

// Armed reports how many watches wait for their socket now.
func (s *Set) Armed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.table.Used()
}

func (s *Set) run() {
	defer close(s.done)
	s.ep.Run(func(data uint64, _ uint32) { s.fire(Slot(data)) })
}

// fire calls back the watch in slot index, if it is still the one the
// event was armed for.
func (s *Set) fire(index, gen uint32) {
	s.mu.Lock()
	w, ok := s.table.Get(index, gen)
	if !ok {
		s.mu.Unlock()
		return
	}
	s.release(w)
	s.mu.Unlock()
	w.fn()
}

// take gives w a slot; s.mu is held.
func (s *Set) take(w *Watch) {
	w.index, w.gen = s.table.Take(w)
	w.armed = true
}

// release frees w's slot; s.mu is held.
func (s *Set) release(w *Watch) {
	s.table.Release(w.index, w.gen)
	w.armed = false
}

// Watch is one socket's registration in a Set.
type Watch struct {
	set *Set
	rc  syscall.RawConn
	fn  func()
	// Guarded by the set's mu.
	added      bool // the socket is in the epoll set, perhaps disarmed (a guess: Arm corrects it)
	armed      bool
	closed     bool
	index, gen uint32
}

// ErrClosed is returned by Arm once the watch or its set is closed.
var ErrClosed = errors.New("poll: watch closed")

// Watch returns a watch of the socket behind rc that calls fn (on the
// set's goroutine: it must not block) each time the socket becomes
// readable after Arm. Nothing is registered until the first Arm.
func (s *Set) Watch(rc syscall.RawConn, fn func()) *Watch {
	return &Watch{set: s, rc: rc, fn: fn}
}

// Arm asks for one call of the watch's function once the socket is
// readable (at once if it is already). It returns an error, and arms
// nothing, if the watch, its set or the socket is closed: the caller then
// goes on as if the socket were readable, and its next read tells it how
// the socket ended. Only one goroutine at a time may call Arm, and not
// again until the function was called.
func (w *Watch) Arm() error {
	s := w.set
	s.mu.Lock()
	if w.closed || s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.take(w)
	index, gen, added := w.index, w.gen, w.added
	w.added = true
	s.mu.Unlock()
	// The callback is made per Arm (it allocates): a flow arms only
	// after it has been idle for a while, and the state it needs must
	// not be shared with the goroutine that the callback may start
	// before Control returns.
	var ctlErr error
	err := w.rc.Control(func(fd uintptr) { ctlErr = s.ctlArm(fd, index, gen, added) })
	if err == nil {
		err = ctlErr
	}
	if err == nil {
		return nil
	}
	s.mu.Lock()
	if w.armed && w.index == index && w.gen == gen {
		s.release(w)
	}
	s.mu.Unlock()
	return fmt.Errorf("poll: arm: %w", err)
}

// ctlArm registers or re-arms fd for the event (index, gen); it runs
// inside Control, so fd is open. added is the guess whether fd is in the
// set already.
func (s *Set) ctlArm(fd uintptr, index, gen uint32, added bool) error {
	data := Data(index, gen)
	op := unix.EPOLL_CTL_MOD
	if !added {
		op = unix.EPOLL_CTL_ADD
	}
	err := s.ep.Ctl(op, int(fd), readable, data)
	switch {
	case errors.Is(err, unix.EEXIST):
		err = s.ep.Ctl(unix.EPOLL_CTL_MOD, int(fd), readable, data)
	case errors.Is(err, unix.ENOENT):
		err = s.ep.Ctl(unix.EPOLL_CTL_ADD, int(fd), readable, data)
	}
	return err
}

// Close forgets the watch; if it was armed, its function is called now,
// so that its owner wakes and finds the socket closed. Close it after
// closing the socket (the kernel drops a closed socket from the set by
// itself). It is idempotent.
func (w *Watch) Close() {
	s := w.set
	s.mu.Lock()
	if w.closed {
		s.mu.Unlock()
		return
	}
	w.closed = true
	armed := w.armed
	if armed {
		s.release(w)
	}
	s.mu.Unlock()
	if armed {
		w.fn()
	}
}
