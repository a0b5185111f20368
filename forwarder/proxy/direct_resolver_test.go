package proxy

import (
	"net"
	"os"
	"syscall"
	"testing"
)

// TestDirectResolverMarksQueries: with a mark or an interface, the names
// Direct dials are resolved over sockets that carry the mark (so policy
// routing that captures the host's DNS lets tungate's own lookups out),
// and a nameserver on loopback is asked without the interface binding.
func TestDirectResolverMarksQueries(t *testing.T) {
	if (&Direct{}).resolver() != nil {
		t.Error("a Direct without mark or interface does not use the default resolver")
	}
	if os.Geteuid() != 0 {
		t.Skip("SO_BINDTODEVICE and SO_MARK need root: run the tests as root")
	}
	d := &Direct{Interface: "tgnosuchif0", Mark: 0x2a}
	r := d.resolver()
	if r == nil || !r.PreferGo || r.Dial == nil {
		t.Fatalf("resolver %+v: want Go's resolver dialing through the Direct's options", r)
	}
	ns := startUDPEcho(t) // a loopback "nameserver"
	conn, err := r.Dial(testCtx(t), "udp", ns)
	if err != nil {
		t.Fatalf("dial the loopback nameserver %s: %v (the interface must not apply to loopback)", ns, err)
	}
	defer conn.Close()
	mark, dev := markAndDevice(t, conn.(syscall.Conn))
	if mark != 0x2a || dev != "" {
		t.Errorf("nameserver socket has mark %#x device %q, want 0x2a and none", mark, dev)
	}
	// Elsewhere the interface applies as it does to flows: a missing one
	// fails the lookup's dial, naming it (nothing is sent).
	if c, err := r.Dial(testCtx(t), "udp", net.JoinHostPort("192.0.2.1", "53")); err == nil {
		c.Close()
		t.Error("a nameserver beyond loopback was dialed without the missing interface")
	}
}

// markAndDevice returns the SO_MARK and SO_BINDTODEVICE of socket c.
func markAndDevice(t *testing.T, c syscall.Conn) (mark int, dev string) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var optErr error
	rc.Control(func(fd uintptr) {
		mark, optErr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK)
		if optErr == nil {
			dev, optErr = getBindToDevice(int(fd))
		}
	})
	if optErr != nil {
		t.Fatal(optErr)
	}
	return mark, dev
}
