// Package hostsock keeps host TCP sockets out of the Go runtime's poller.
// Their readiness comes from one epoll set of tungate's own, read by one
// goroutine, which wakes the goroutine waiting on the socket.
//
// Why: the runtime gives every socket it polls a record of about 300
// bytes from memory it never returns to the OS (it is reused, never
// freed). After a flood of 19,000 connections those records alone kept
// 6 MB of RSS for the rest of the process's life. A Conn here costs a
// slot in a table that is dropped once the flood has gone, and the same
// number of system calls per connection as package net, or fewer.
//
// Sockets are registered once, edge-triggered, for reading and writing.
// Events carry a slot number and a generation, never the descriptor, so
// an event queued for a socket closed meanwhile finds no one to wake.
package hostsock

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/forwarder/internal/poll"
)

// ErrClosed is returned by Dial once the set is closed.
var ErrClosed = errors.New("hostsock: set closed")

// events is what a socket is registered for, once, at connect.
const events = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET

// Set is one epoll set and the goroutine that reads it, owned by whoever
// called New and stopped by Close.
type Set struct {
	ep   *poll.Epoll
	done chan struct{}

	closed atomic.Bool // set under mu, so that add, which checks under mu, never registers after Close

	mu    sync.Mutex
	table poll.Slots[*Conn] // the registered sockets
}

// New creates a Set and starts its goroutine.
func New() (*Set, error) {
	ep, err := poll.NewEpoll("hostsock-epoll")
	if err != nil {
		return nil, fmt.Errorf("hostsock: %w", err)
	}
	s := &Set{ep: ep, done: make(chan struct{})}
	go s.run()
	return s, nil
}

// Close stops the set's goroutine and waits for it, then wakes every
// socket's waiters, which from then on fail instead of waiting for
// events that no one would deliver. The sockets stay open for their
// owners to close. It is idempotent.
func (s *Set) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.closed.Store(true)
	s.mu.Unlock()
	err := s.ep.Close() // wakes run: its read fails as closed
	<-s.done
	s.mu.Lock()
	conns := s.table.Drop()
	s.mu.Unlock()
	for _, c := range conns {
		c.rd.wake()
		c.wr.wake()
	}
	if err != nil {
		return fmt.Errorf("hostsock: close epoll set: %w", err)
	}
	return nil
}

// Sockets reports how many sockets are registered now.
func (s *Set) Sockets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.table.Used()
}

func (s *Set) run() {
	defer close(s.done)
	s.ep.Run(s.fire)
}

// fire wakes the waiters of the socket an event was for, if the slot
// still holds the socket it was registered for.
func (s *Set) fire(data uint64, ev uint32) {
	s.mu.Lock()
	c, ok := s.table.Get(poll.Slot(data))
	s.mu.Unlock()
	if !ok {
		return
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		c.rd.wake()
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		c.wr.wake()
	}
}

// add registers c's socket and gives it a slot.
func (s *Set) add(c *Conn) error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return ErrClosed
	}
	c.index, c.gen = s.table.Take(c)
	s.mu.Unlock()
	if err := s.ep.Ctl(unix.EPOLL_CTL_ADD, c.fd, events, poll.Data(c.index, c.gen)); err != nil {
		s.remove(c)
		return fmt.Errorf("hostsock: register socket: %w", err)
	}
	return nil
}

// remove frees c's slot; the kernel drops a closed socket from the epoll
// set by itself.
func (s *Set) remove(c *Conn) {
	s.mu.Lock()
	s.table.Release(c.index, c.gen)
	s.mu.Unlock()
}
