package forwarder_test

import (
	"io"
	"net"
	"testing"
)

// BenchmarkRelayFromStack moves chunks from an app in a gVisor stack,
// through tungate's stack and relay, to a loopback server: the upload path
// without a TUN device. Its allocations include both stacks' (the fake app
// is a gVisor stack too), not only the relay's.
func BenchmarkRelayFromStack(b *testing.B) {
	const chunk = 64 << 10
	received := make(chan net.Conn, 1)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			received <- c
		}
	}()
	app := newPair(b, loopbackTo(ln.Addr().String()))
	c := dialApp(b, app, 80)
	server := <-received
	defer server.Close()
	data, sink := make([]byte, chunk), make([]byte, chunk)
	move := func() {
		if _, err := c.Write(data); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(server, sink); err != nil {
			b.Fatal(err)
		}
	}
	move()
	b.SetBytes(chunk)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		move()
	}
}
