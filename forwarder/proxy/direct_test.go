package proxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDirectRefused(t *testing.T) {
	closed := startEcho(t)
	addr := closed.addr()
	closed.ln.Close()
	forEachSocketKind(t, func(t *testing.T, ctx context.Context) {
		_, err := (&Direct{}).DialContext(ctx, "tcp", addr)
		if !errors.Is(err, ErrRefused) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("error %v: want both ErrRefused and ECONNREFUSED", err)
		}
		if _, ok := errors.AsType[*net.OpError](err); !ok {
			t.Errorf("error %v lost its *net.OpError", err)
		}
	})
}

func TestDirectSocketOptions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SO_BINDTODEVICE and SO_MARK need root: run the tests as root")
	}
	echo := startEcho(t)
	d := &Direct{Interface: "lo", Mark: 0x2a}
	forEachSocketKind(t, func(t *testing.T, ctx context.Context) {
		conn, err := d.DialContext(ctx, "tcp", echo.addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		echoRoundTrip(t, conn, "bound to lo")
		mark, dev := markAndDevice(t, conn.(syscall.Conn))
		if mark != 0x2a || dev != "lo" {
			t.Errorf("socket has mark %#x device %q, want 0x2a and lo", mark, dev)
		}
		_, err = (&Direct{Interface: "tgnosuchif0"}).DialContext(ctx, "tcp", echo.addr())
		if err == nil || !strings.Contains(err.Error(), `interface "tgnosuchif0"`) {
			t.Fatalf("error %v: want one naming the missing interface", err)
		}
	})

	udpEcho := startUDPEcho(t)
	pc, err := d.DialPacket(testCtx(t), "udp", udpEcho)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	echoRoundTrip(t, pc, "udp bound to lo")
}

func getBindToDevice(fd int) (string, error) {
	return unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
}

// TestDirectKeepAlive checks the keepalive of a direct TCP socket: on,
// 15 s idle and interval as package net's default, and the kernel's own
// probe count (one setsockopt less per dial).
func TestDirectKeepAlive(t *testing.T) {
	probes, err := os.ReadFile("/proc/sys/net/ipv4/tcp_keepalive_probes")
	if err != nil {
		t.Skipf("kernel's keepalive probe count: %v", err)
	}
	forEachSocketKind(t, func(t *testing.T, ctx context.Context) { checkKeepAlive(t, dialEchoRaw(t, ctx), probes) })
}

func checkKeepAlive(t *testing.T, rc syscall.RawConn, probes []byte) {
	got := map[string]int{}
	rc.Control(func(fd uintptr) {
		for name, opt := range map[string][2]int{
			"SO_KEEPALIVE":  {unix.SOL_SOCKET, unix.SO_KEEPALIVE},
			"TCP_KEEPIDLE":  {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
			"TCP_KEEPINTVL": {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL},
			"TCP_KEEPCNT":   {unix.IPPROTO_TCP, unix.TCP_KEEPCNT},
		} {
			v, err := unix.GetsockoptInt(int(fd), opt[0], opt[1])
			if err != nil {
				t.Errorf("getsockopt %s: %v", name, err)
			}
			got[name] = v
		}
	})
	var count int
	if _, err := fmt.Sscan(string(probes), &count); err != nil {
		t.Fatalf("tcp_keepalive_probes %q: %v", probes, err)
	}
	want := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": 15, "TCP_KEEPINTVL": 15, "TCP_KEEPCNT": count}
	if !maps.Equal(got, want) {
		t.Errorf("keepalive options %v, want %v", got, want)
	}
}

// TestDirectKeepAliveLater checks that a dial under WithKeepAliveLater
// leaves keepalive off, for its caller to set once the connection idles.
func TestDirectKeepAliveLater(t *testing.T) {
	forEachSocketKind(t, func(t *testing.T, ctx context.Context) {
		rc := dialEchoRaw(t, WithKeepAliveLater(ctx))
		on := -1
		rc.Control(func(fd uintptr) { on, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE) })
		if on != 0 {
			t.Fatalf("SO_KEEPALIVE %d, want 0", on)
		}
	})
}

// dialEchoRaw dials an echo server with Direct under ctx and returns the
// socket's raw connection; the socket is closed when the test ends.
func dialEchoRaw(t *testing.T, ctx context.Context) syscall.RawConn {
	t.Helper()
	echo := startEcho(t)
	conn, err := (&Direct{}).DialContext(ctx, "tcp", echo.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rc, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}
