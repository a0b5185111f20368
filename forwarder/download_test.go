package forwarder_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
)

// startDownload dials port through a gateway to a server that sends
// size random bytes (with reset it then resets the connection instead of
// closing it), and returns the bytes and the app's connection, whose
// reads fail after 20 s.
func startDownload(t *testing.T, size int, port uint16, reset bool) ([]byte, *gonet.TCPConn) {
	want := make([]byte, size)
	rand.Read(want)
	addr := listen(t, func(c *net.TCPConn) {
		c.Write(want)
		if reset {
			c.SetLinger(0)
		}
	})
	c := dialApp(t, newPair(t, loopbackTo(addr)), port)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	return want, c
}

// slowRead reads r to the end in chunks of chunk bytes with pause between
// them, returning what it read and the error that ended it (nil at EOF).
func slowRead(r io.Reader, chunk int, pause time.Duration) ([]byte, error) {
	var got bytes.Buffer
	buf := make([]byte, chunk)
	for {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			return got.Bytes(), nil
		}
		if err != nil {
			return got.Bytes(), err
		}
		time.Sleep(pause)
	}
}

// TestTCPDownloadIntact downloads 64 MiB that the
// server closes right after writing: every byte arrives in order (the
// hash), and then the app reads EOF (the host's FIN became the app's).
func TestTCPDownloadIntact(t *testing.T) {
	want, c := startDownload(t, 64<<20, 80, false)
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("after %d bytes: %v; want EOF", len(got), err)
	}
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("app got %d bytes that differ from the %d sent", len(got), len(want))
	}
}

// TestTCPDownloadToSlowApp reads the download slowly, after a pause, so
// that the stack's send buffer fills and the rest must wait in the host
// socket: every byte still arrives once and in order.
func TestTCPDownloadToSlowApp(t *testing.T) {
	want, c := startDownload(t, 16<<20, 81, false)
	time.Sleep(300 * time.Millisecond)
	got, err := slowRead(c, 256<<10, time.Millisecond)
	if err != nil {
		t.Fatalf("after %d bytes: %v; want EOF", len(got), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("app got %d bytes that differ from the %d sent", len(got), len(want))
	}
}

// TestTCPDownloadResetMidTransfer resets the host connection while the
// app reads slowly: the app gets a prefix of the bytes, intact, then an
// error, not EOF.
func TestTCPDownloadResetMidTransfer(t *testing.T) {
	want, c := startDownload(t, 8<<20, 82, true)
	time.Sleep(300 * time.Millisecond)
	got, err := slowRead(c, 64<<10, time.Millisecond)
	if err == nil {
		t.Fatalf("app read %d bytes and EOF; want an error after the reset", len(got))
	}
	if len(got) >= 8<<20 || !bytes.Equal(got, want[:len(got)]) {
		t.Fatalf("app read %d bytes (of %d sent) before %v; want an intact prefix", len(got), 8<<20, err)
	}
}
