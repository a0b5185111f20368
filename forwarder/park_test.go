package forwarder

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/forwarder/internal/poll"
)

// waitParked waits until set holds n parked flows and returns how long
// that took.
func waitParked(t *testing.T, set *poll.Set, n int) time.Duration {
	t.Helper()
	start := time.Now()
	for set.Armed() != n {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%d flows parked after 5 s, want %d", set.Armed(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func readString(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	buf := make([]byte, n)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	return string(buf)
}

// TestRelayParksIdleUpstream checks that an idle flow's upstream -> app
// direction gives up its goroutine and waits in the poll set, that data
// either way wakes it with every byte intact, and that FINs pass while it
// is parked.
func TestRelayParksIdleUpstream(t *testing.T) {
	app, a := loopbackPair(t)
	b, server := loopbackPair(t)
	before := runtime.NumGoroutine()
	set, ended := parkingRelay(t, context.Background(), a, b, nil)
	if d := waitParked(t, set, 1); d > 2*parkAfter+time.Second {
		t.Errorf("parked after %v, want within %v", d, 2*parkAfter)
	}
	// The set has its goroutine and the app -> upstream half of two host
	// sockets keeps one (a stack's app side notifies instead); the down
	// one is gone.
	if n := runtime.NumGoroutine(); n > before+2 {
		t.Errorf("%d goroutines with the flow parked, want at most %d", n, before+2)
	}
	stacks := make([]byte, 1<<20)
	if s := string(stacks[:runtime.Stack(stacks, true)]); strings.Contains(s, "runDown") {
		t.Errorf("a goroutine is in runDown with the flow parked:\n%s", s)
	}
	server.Write([]byte("hello"))
	if got := readString(t, app, 5); got != "hello" {
		t.Fatalf("app read %q, want hello", got)
	}
	app.Write([]byte("ping"))
	if got := readString(t, server, 4); got != "ping" {
		t.Fatalf("server read %q, want ping", got)
	}
	waitParked(t, set, 1)
	server.CloseWrite() // wakes the parked direction with EOF
	app.SetReadDeadline(time.Now().Add(5 * time.Second))
	if rest, err := io.ReadAll(app); err != nil || len(rest) != 0 {
		t.Fatalf("app read %q, %v after the server's FIN; want EOF", rest, err)
	}
	app.CloseWrite()
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("relay ended with %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("relay did not end after both FINs")
	}
	if set.Armed() != 0 {
		t.Fatalf("%d watches armed after the relay ended", set.Armed())
	}
}

// TestParkedRelayStopsAtOnce checks that cancelling a parked flow resets
// the app at once, as Forwarder.Close does to every flow.
func TestParkedRelayStopsAtOnce(t *testing.T) {
	app, a := loopbackPair(t)
	b, _ := loopbackPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	set, ended := parkingRelay(t, ctx, a, b, nil)
	waitParked(t, set, 1)
	start := time.Now()
	cancel()
	select {
	case <-ended:
	case <-time.After(time.Second):
		t.Fatal("parked relay still running 1 s after cancel")
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("parked relay took %v to stop", d)
	}
	app.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := app.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("app read %v after the stop, want connection reset", err)
	}
}

// TestParkTurnsKeepAliveOn checks that an upstream dialed without
// keepalive (proxy.WithKeepAliveLater) gets it when its flow first parks.
func TestParkTurnsKeepAliveOn(t *testing.T) {
	_, a := loopbackPair(t)
	b, _ := loopbackPair(t)
	if err := b.SetKeepAlive(false); err != nil {
		t.Fatal(err)
	}
	keepAlive := func() (on, idle int) {
		rc, err := b.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		rc.Control(func(fd uintptr) {
			on, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
			idle, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		})
		return on, idle
	}
	set, _ := parkingRelay(t, context.Background(), a, b, nil)
	if on, _ := keepAlive(); on != 0 {
		t.Fatalf("SO_KEEPALIVE %d before the flow parked, want 0", on)
	}
	waitParked(t, set, 1)
	if on, idle := keepAlive(); on != 1 || idle != 15 {
		t.Fatalf("SO_KEEPALIVE %d, TCP_KEEPIDLE %d once parked; want 1, 15", on, idle)
	}
}
