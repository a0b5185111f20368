package hostsock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newSet(t *testing.T) *Set {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// listen returns a loopback listener whose accepted connections go to
// handle, each in its own goroutine.
func listen(t *testing.T, network string, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "tcp6" {
		addr = "[::1]:0"
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("no %s loopback here: %v", network, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { defer c.Close(); handle(c) })
		}
	})
	return l.Addr().(*net.TCPAddr).AddrPort()
}

func echo(c net.Conn) { io.Copy(c, c) }

func TestDialEchoAndHalfClose(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			s := newSet(t)
			c, err := s.Dial(context.Background(), listen(t, network, echo), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// More than both socket buffers, so that writes wait.
			payload := bytes.Repeat([]byte("tungate hostsock "), 1<<18)
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(c)
				got <- b
			}()
			if n, err := c.Write(payload); err != nil || n != len(payload) {
				t.Fatalf("write = %d, %v; want %d, nil", n, err, len(payload))
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			select {
			case b := <-got:
				if sha256.Sum256(b) != sha256.Sum256(payload) {
					t.Fatalf("echoed %d bytes, not the %d sent", len(b), len(payload))
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no EOF after the echo")
			}
			if c.RemoteAddr().String() == "" || c.LocalAddr().(*net.TCPAddr).Port == 0 {
				t.Errorf("addresses %v -> %v", c.LocalAddr(), c.RemoteAddr())
			}
		})
	}
}

func TestDialRefused(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr).AddrPort()
	l.Close()
	s := newSet(t)
	_, err = s.Dial(context.Background(), addr, nil)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial of a closed port: %v, want ECONNREFUSED", err)
	}
	if n := s.Sockets(); n != 0 {
		t.Errorf("%d sockets registered after a refused dial", n)
	}
}

func TestControlRunsBeforeConnect(t *testing.T) {
	s := newSet(t)
	want := errors.New("no such interface")
	_, err := s.Dial(context.Background(), listen(t, "tcp4", echo), func(int) error { return want })
	if !errors.Is(err, want) {
		t.Fatalf("dial = %v, want control's error", err)
	}
}

func TestReadDeadline(t *testing.T) {
	s := newSet(t)
	c, err := s.Dial(context.Background(), listen(t, "tcp4", func(c net.Conn) { io.Copy(io.Discard, c) }), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetReadDeadline(start.Add(50 * time.Millisecond))
	_, err = c.Read(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 2*time.Second {
		t.Errorf("read gave up after %v, want about 50ms", d)
	}
	// A deadline removed lets the read wait for data again.
	c.SetReadDeadline(time.Time{})
	c.Write([]byte("x")) // the peer only reads; nothing comes back
	errc := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 1)); errc <- err }()
	select {
	case err := <-errc:
		t.Fatalf("read without a deadline returned %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	c.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("read woken by Close: %v, want net.ErrClosed", err)
	}
}

func TestRawReadWaitsForData(t *testing.T) {
	s := newSet(t)
	c, err := s.Dial(context.Background(), listen(t, "tcp4", func(c net.Conn) {
		time.Sleep(30 * time.Millisecond)
		c.Write([]byte("late"))
		io.Copy(io.Discard, c)
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, _ := c.SyscallConn()
	calls, buf := 0, make([]byte, 16)
	var n int
	err = rc.Read(func(fd uintptr) bool {
		calls++
		var rerr error
		n, rerr = syscall.Read(int(fd), buf)
		return !errors.Is(rerr, syscall.EAGAIN)
	})
	if err != nil || string(buf[:n]) != "late" {
		t.Fatalf("raw read = %q, %v", buf[:n], err)
	}
	if calls < 2 || calls > 4 {
		t.Errorf("f called %d times, want one EAGAIN and the read (a spare wake-up at most)", calls)
	}
}

// TestSetCloseWakesWaiters: a read parked in the set fails once the set
// closes, rather than waiting for events no one delivers; dials fail.
func TestSetCloseWakesWaiters(t *testing.T) {
	s := newSet(t)
	addr := listen(t, "tcp4", func(c net.Conn) { io.Copy(io.Discard, c) })
	c, err := s.Dial(context.Background(), addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errc := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 1)); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	s.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("read after the set closed: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read still parked after the set closed")
	}
	if _, err := s.Dial(context.Background(), addr, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("dial after Close: %v, want ErrClosed", err)
	}
}

// TestDialCancelled: a handshake that gets no answer ends when ctx does.
// The socket is made in a network namespace of the test's own, on a
// thread that stays there, whose only route leads into a veth whose peer
// is down, to a neighbour entry of its own: the SYN goes nowhere, and
// connect stays pending.
func TestDialCancelled(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace of its own")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("needs nsenter(1)")
	}
	s := newSet(t)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("unshare: %w", err)
			return
		}
		ns := fmt.Sprintf("--net=/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		for _, args := range [][]string{
			{"link", "add", "a0", "type", "veth", "peer", "name", "b0"},
			{"addr", "add", "192.0.2.1/24", "dev", "a0"},
			{"link", "set", "a0", "up"},
			{"neigh", "add", "192.0.2.2", "lladdr", "02:00:00:00:00:02", "dev", "a0", "nud", "permanent"},
		} {
			if out, err := exec.Command("nsenter", append([]string{ns, "ip"}, args...)...).CombinedOutput(); err != nil {
				done <- fmt.Errorf("ip %v: %w: %s", args, err, out)
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := s.Dial(ctx, netip.MustParseAddrPort("192.0.2.2:80"), nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			done <- fmt.Errorf("dial into a veth with its peer down: %v, want context.DeadlineExceeded", err)
			return
		}
		if d := time.Since(start); d > 2*time.Second {
			done <- fmt.Errorf("dial ended %v after its 200ms deadline", d)
			return
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := s.Sockets(); n != 0 {
		t.Errorf("%d sockets registered after the abandoned dial", n)
	}
}

func TestSlotsDroppedWhenAllClosed(t *testing.T) {
	s := newSet(t)
	addr := listen(t, "tcp4", echo)
	var conns []*Conn
	for range 50 {
		c, err := s.Dial(context.Background(), addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if n := s.Sockets(); n != 50 {
		t.Fatalf("%d sockets registered, want 50", n)
	}
	for _, c := range conns {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := conns[0].Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second close: %v, want net.ErrClosed", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.table.Used(); n != 0 || len(s.table.Drop()) != 0 {
		t.Errorf("after closing all: %d slots used; want none", n)
	}
}

// TestCloseRacesReadersAndWriters: closing sockets while a reader and a
// writer use each (some of them parked in the set, some in a system call)
// wakes both with an error every time, and nothing races (run with -race).
func TestCloseRacesReadersAndWriters(t *testing.T) {
	s := newSet(t)
	// The peer echoes slowly, so that writers fill the socket buffers
	// and park while readers wait for the echo.
	addr := listen(t, "tcp4", func(c net.Conn) {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			time.Sleep(time.Millisecond)
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	})
	const conns = 40
	var wg sync.WaitGroup
	for i := range conns {
		c, err := s.Dial(context.Background(), addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			buf := make([]byte, 1<<16)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		})
		wg.Go(func() {
			chunk := make([]byte, 1<<16)
			for {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		})
		wg.Go(func() {
			time.Sleep(time.Duration(i%10) * 5 * time.Millisecond)
			c.Close()
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a reader or writer still waits 10 s after its socket closed")
	}
	if n := s.Sockets(); n != 0 {
		t.Errorf("%d sockets registered after closing all", n)
	}
}
