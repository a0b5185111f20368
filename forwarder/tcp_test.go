package forwarder_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
)

// listen starts a loopback TCP server that runs serve on each connection.
func listen(t testing.TB, serve func(c *net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c.(*net.TCPConn))
			}()
		}
	}()
	return ln.Addr().String()
}

func TestTCPRelaysBytesExactly(t *testing.T) {
	addr := listen(t, func(c *net.TCPConn) { io.Copy(c, c) })
	app := newPair(t, loopbackTo(addr))
	c := dialApp(t, app, 80)
	want := make([]byte, 4<<20)
	rand.Read(want)
	go func() {
		c.Write(want)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo differs: got %d bytes, want %d", len(got), len(want))
	}
}

func TestTCPHalfCloseKeepsOtherDirection(t *testing.T) {
	// The server reads to EOF, then answers: the answer must still arrive
	// after the app shut down its write side.
	addr := listen(t, func(c *net.TCPConn) {
		n, _ := io.Copy(io.Discard, c)
		time.Sleep(50 * time.Millisecond)
		c.Write([]byte("got " + string(rune('0'+n))))
	})
	app := newPair(t, loopbackTo(addr))
	c := dialApp(t, app, 80)
	c.Write([]byte("abc"))
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got 3" {
		t.Fatalf("after half-close got %q, %v; want \"got 3\"", got, err)
	}
}

func TestTCPRefusedDestinationResetsAtOnce(t *testing.T) {
	refuse := dialerFunc(func(context.Context, string, string) (net.Conn, error) {
		return nil, syscall.ECONNREFUSED
	})
	app := newPair(t, refuse)
	start := time.Now()
	_, err := gonet.DialContextTCP(context.Background(), app, to(10, 9, 9, 9, 81), ipv4.ProtocolNumber)
	if err == nil {
		t.Fatal("dial succeeded; want connection refused")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !bytes.Contains([]byte(err.Error()), []byte("refused")) {
		t.Fatalf("dial error %v; want connection refused", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("refusal took %v; want an immediate reset", d)
	}
}

func TestTCPUpstreamResetResetsApp(t *testing.T) {
	addr := listen(t, func(c *net.TCPConn) {
		c.Write([]byte("x"))
		time.Sleep(100 * time.Millisecond)
		c.SetLinger(0)
		c.Close()
	})
	app := newPair(t, loopbackTo(addr))
	c := dialApp(t, app, 82)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(c)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("reset")) {
		t.Fatalf("read after upstream reset: %v; want connection reset", err)
	}
}
