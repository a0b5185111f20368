package poll

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

func rawConn(t *testing.T, c syscall.Conn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func newSet(t *testing.T) *Set {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func waitFired(t *testing.T, fired <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatalf("no callback %s", what)
	}
}

func notFired(t *testing.T, fired <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-fired:
		t.Fatalf("callback %s", what)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestWatchCallsBackOncePerArm(t *testing.T) {
	s := newSet(t)
	a, b := tcpPair(t)
	fired := make(chan struct{}, 4)
	w := s.Watch(rawConn(t, b), func() { fired <- struct{}{} })
	if err := w.Arm(); err != nil {
		t.Fatal(err)
	}
	notFired(t, fired, "before any data")
	if s.Armed() != 1 {
		t.Fatalf("Armed() = %d, want 1", s.Armed())
	}
	a.Write([]byte("x"))
	waitFired(t, fired, "after data")
	// One shot: the byte is still unread, but nothing fires until the
	// next Arm, which fires at once (level-triggered).
	notFired(t, fired, "twice for one Arm")
	if s.Armed() != 0 {
		t.Fatalf("Armed() = %d after the callback, want 0", s.Armed())
	}
	if err := w.Arm(); err != nil {
		t.Fatal(err)
	}
	waitFired(t, fired, "re-armed on unread data")
	var buf [1]byte
	b.Read(buf[:])
	if err := w.Arm(); err != nil {
		t.Fatal(err)
	}
	notFired(t, fired, "with the data read")
	a.CloseWrite()
	waitFired(t, fired, "on the peer's FIN")
}

func TestWatchCloseWakesAndRefuses(t *testing.T) {
	s := newSet(t)
	_, b := tcpPair(t)
	fired := make(chan struct{}, 4)
	w := s.Watch(rawConn(t, b), func() { fired <- struct{}{} })
	if err := w.Arm(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	w.Close()
	waitFired(t, fired, "on Close of an armed watch")
	if err := w.Arm(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Arm after Close: %v, want ErrClosed", err)
	}
	w.Close()
	notFired(t, fired, "on a second Close")
}

func TestArmOnClosedSocketFails(t *testing.T) {
	s := newSet(t)
	_, b := tcpPair(t)
	w := s.Watch(rawConn(t, b), func() { t.Error("callback for a closed socket") })
	b.Close()
	if err := w.Arm(); err == nil {
		t.Fatal("Arm on a closed socket succeeded")
	}
	if s.Armed() != 0 {
		t.Fatalf("Armed() = %d, want 0", s.Armed())
	}
}

func TestSetCloseWakesEveryArmedWatch(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	fired := make(chan struct{}, n)
	var ws []*Watch
	for range n {
		_, b := tcpPair(t)
		w := s.Watch(rawConn(t, b), func() { fired <- struct{}{} })
		if err := w.Arm(); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(fired) != n {
		t.Fatalf("%d callbacks on Close, want %d", len(fired), n)
	}
	if err := ws[0].Arm(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Arm after the set closed: %v, want ErrClosed", err)
	}
	if s.table.slots != nil || s.table.free != nil {
		t.Fatal("slot table kept after Close")
	}
}

func TestSlotsAreDroppedWhenAllFree(t *testing.T) {
	s := newSet(t)
	fired := make(chan struct{}, 100)
	var peers []*net.TCPConn
	for range 100 {
		a, b := tcpPair(t)
		w := s.Watch(rawConn(t, b), func() { fired <- struct{}{} })
		if err := w.Arm(); err != nil {
			t.Fatal(err)
		}
		peers = append(peers, a)
	}
	s.mu.Lock()
	slots := len(s.table.slots)
	s.mu.Unlock()
	if slots != 100 {
		t.Fatalf("%d slots for 100 armed watches", slots)
	}
	for _, a := range peers {
		a.Write([]byte("x"))
	}
	for range 100 {
		waitFired(t, fired, "for each socket")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.table.slots != nil || s.table.free != nil {
		t.Fatalf("slot table of %d kept with nothing armed", len(s.table.slots))
	}
}
