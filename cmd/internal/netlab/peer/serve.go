package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sync"
)

// serve runs the requested listeners until ctx ends.
func serve(ctx context.Context, fs *flag.FlagSet, args []string, stdout io.Writer) error {
	var echoAddrs, sinkAddrs, txfirstAddrs, udpAddrs addrList
	fs.Var(&echoAddrs, "tcp-echo", "TCP `address` that echoes what it reads, then half-closes")
	fs.Var(&sinkAddrs, "tcp-sink", "TCP `address` that reads to EOF, then replies \"SIZE SHA256\\n\"")
	fs.Var(&txfirstAddrs, "tcp-txfirst", "TCP `address` that sends -txfirst-size bytes and half-closes, then reads to EOF")
	txfirstSize := fs.Int64("txfirst-size", 1<<20, "bytes a txfirst listener sends")
	fs.Var(&udpAddrs, "udp-echo", "UDP `address` that echoes every datagram to its sender")
	if err := fs.Parse(args); err != nil {
		return err
	}

	out := &lockedWriter{w: stdout}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	handlers := []struct {
		addrs  addrList
		handle func(*net.TCPConn) error
	}{
		{echoAddrs, handleEcho},
		{sinkAddrs, handleSink},
		{txfirstAddrs, func(c *net.TCPConn) error { return handleTxfirst(c, *txfirstSize, out) }},
	}
	for _, h := range handlers {
		for _, addr := range h.addrs {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			wg.Go(func() { acceptLoop(ctx, l.(*net.TCPListener), h.handle, &wg, out) })
		}
	}
	for _, addr := range udpAddrs {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return err
		}
		wg.Go(func() { udpEchoLoop(ctx, pc, out) })
	}
	fmt.Fprintln(out, "ready")
	<-ctx.Done()
	return nil
}

// acceptLoop serves l until ctx ends, one goroutine per connection, each
// counted in wg and its connection closed when ctx ends.
func acceptLoop(ctx context.Context, l *net.TCPListener, handle func(*net.TCPConn) error, wg *sync.WaitGroup, out io.Writer) {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(out, "accept %s: %v\n", l.Addr(), err)
			}
			return
		}
		wg.Go(func() {
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			defer c.Close()
			if err := handle(c); err != nil {
				fmt.Fprintf(out, "%s from %s: %v\n", l.Addr(), c.RemoteAddr(), err)
			}
		})
	}
}

func handleEcho(c *net.TCPConn) error {
	if _, err := io.Copy(c, c); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	return c.CloseWrite()
}

func handleSink(c *net.TCPConn) error {
	w := newHashingWriter()
	if _, err := io.Copy(w, c); err != nil {
		return fmt.Errorf("sink: read: %w", err)
	}
	// The reply goes out after the client's EOF: this is what a half-closed
	// connection must still carry.
	if _, err := fmt.Fprintln(c, w.summary()); err != nil {
		return fmt.Errorf("sink: reply: %w", err)
	}
	return c.CloseWrite()
}

// handleTxfirst half-closes first, then reads; it reports what it read on
// out, as "txfirst SIZE SHA256", since it can no longer tell the client.
func handleTxfirst(c *net.TCPConn, size int64, out io.Writer) error {
	if _, err := io.Copy(c, patternReader(size)); err != nil {
		return fmt.Errorf("txfirst: send: %w", err)
	}
	if err := c.CloseWrite(); err != nil {
		return fmt.Errorf("txfirst: half-close: %w", err)
	}
	w := newHashingWriter()
	if _, err := io.Copy(w, c); err != nil {
		return fmt.Errorf("txfirst: read after half-close: %w", err)
	}
	fmt.Fprintf(out, "txfirst %s\n", w.summary())
	return nil
}

func udpEchoLoop(ctx context.Context, pc net.PacketConn, out io.Writer) {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				fmt.Fprintf(out, "udp %s: %v\n", pc.LocalAddr(), err)
			}
			return
		}
		if _, err := pc.WriteTo(buf[:n], from); err != nil {
			fmt.Fprintf(out, "udp %s: reply to %s: %v\n", pc.LocalAddr(), from, err)
		}
	}
}

// lockedWriter serialises lines written from many goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
