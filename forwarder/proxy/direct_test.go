package proxy

import (
	"errors"
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
	_, err := (&Direct{}).DialContext(testCtx(t), "tcp", addr)
	if !errors.Is(err, ErrRefused) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("error %v: want both ErrRefused and ECONNREFUSED", err)
	}
	if _, ok := errors.AsType[*net.OpError](err); !ok {
		t.Errorf("error %v lost its *net.OpError", err)
	}
}

func TestDirectSocketOptions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SO_BINDTODEVICE and SO_MARK need root: run the tests as root")
	}
	echo := startEcho(t)
	d := &Direct{Interface: "lo", Mark: 0x2a}
	conn, err := d.DialContext(testCtx(t), "tcp", echo.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echoRoundTrip(t, conn, "bound to lo")
	mark, dev := markAndDevice(t, conn.(*net.TCPConn))
	if mark != 0x2a || dev != "lo" {
		t.Errorf("socket has mark %#x device %q, want 0x2a and lo", mark, dev)
	}

	udpEcho := startUDPEcho(t)
	pc, err := d.DialPacket(testCtx(t), "udp", udpEcho)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	echoRoundTrip(t, pc, "udp bound to lo")

	_, err = (&Direct{Interface: "tgnosuchif0"}).DialContext(testCtx(t), "tcp", echo.addr())
	if err == nil || !strings.Contains(err.Error(), `interface "tgnosuchif0"`) {
		t.Fatalf("error %v: want one naming the missing interface", err)
	}
}

func getBindToDevice(fd int) (string, error) {
	return unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
}
