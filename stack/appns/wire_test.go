package appns

import (
	"io"
	"net/netip"
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestWireRoundTripWithFD(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	req := setupRequest{Device: "tun0", MTU: 1400, Addresses: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24")}, Command: []string{"sh", "-c", "x"}}
	if err := send(fds[1], req, int(w.Fd())); err != nil {
		t.Fatal(err)
	}
	var got setupRequest
	passed, err := recv(fds[0], &got)
	if err != nil {
		t.Fatal(err)
	}
	if len(passed) != 1 || got.MTU != 1400 || !slices.Equal(got.Command, req.Command) || got.Addresses[0] != req.Addresses[0] {
		t.Fatalf("got %+v with fds %v", got, passed)
	}
	// The passed fd is the pipe's write end.
	if _, err := unix.Write(passed[0], []byte("x")); err != nil {
		t.Fatal(err)
	}
	unix.Close(passed[0])
	b := make([]byte, 1)
	if _, err := r.Read(b); err != nil || b[0] != 'x' {
		t.Errorf("read through the passed fd: %q, %v", b, err)
	}
	unix.Close(fds[1])
	if _, err := recv(fds[0], &got); err != io.EOF {
		t.Errorf("after close: %v, want EOF", err)
	}
}
