package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// dialTCP connects to addr and bounds the whole exchange by timeout.
func dialTCP(ctx context.Context, addr string, timeout time.Duration) (*net.TCPConn, error) {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	return c.(*net.TCPConn), nil
}

// send uploads random bytes to a sink, half-closes, and checks the reply.
func send(ctx context.Context, fs *flag.FlagSet, args []string, stdout io.Writer) error {
	addr := fs.String("addr", "", "sink `address`")
	size := fs.Int64("size", 1<<20, "bytes to send")
	timeout := fs.Duration("timeout", time.Minute, "limit for the whole exchange")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := dialTCP(ctx, *addr, *timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	sent := newHashingWriter()
	if _, err := io.Copy(io.MultiWriter(c, sent), randomReader(*size)); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if err := c.CloseWrite(); err != nil {
		return fmt.Errorf("half-close: %w", err)
	}
	reply, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("read reply after half-close: %w", err)
	}
	got, want := strings.TrimSpace(string(reply)), sent.summary()
	if got != want {
		return fmt.Errorf("sink received %q, sent %q", got, want)
	}
	fmt.Fprintln(stdout, "ok", want)
	return nil
}

// recvFirst reads a txfirst server's stream to its EOF, checking every byte,
// then sends its own bytes and half-closes; it prints what it sent so that
// the test can compare with what the server reports.
func recvFirst(ctx context.Context, fs *flag.FlagSet, args []string, stdout io.Writer) error {
	addr := fs.String("addr", "", "txfirst server `address`")
	expect := fs.Int64("expect", 1<<20, "bytes the server sends before its half-close")
	size := fs.Int64("size", 1<<20, "bytes to send after the server's half-close")
	timeout := fs.Duration("timeout", time.Minute, "limit for the whole exchange")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := dialTCP(ctx, *addr, *timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	cmp := &compareWriter{want: patternReader(*expect)}
	if _, err := io.Copy(cmp, c); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	if cmp.off != *expect {
		return fmt.Errorf("received %d bytes before EOF, want %d", cmp.off, *expect)
	}
	sent := newHashingWriter()
	if _, err := io.Copy(io.MultiWriter(c, sent), randomReader(*size)); err != nil {
		return fmt.Errorf("send after the server's half-close: %w", err)
	}
	if err := c.CloseWrite(); err != nil {
		return fmt.Errorf("half-close: %w", err)
	}
	// The server closes once it has read everything.
	if n, err := io.Copy(io.Discard, c); err != nil || n != 0 {
		return fmt.Errorf("wait for close: %d bytes, %v", n, err)
	}
	fmt.Fprintln(stdout, "ok", sent.summary())
	return nil
}

// echo runs conns concurrent round trips through an echo server.
func echo(ctx context.Context, fs *flag.FlagSet, args []string, stdout io.Writer) error {
	addr := fs.String("addr", "", "echo server `address`")
	conns := fs.Int("conns", 200, "concurrent connections")
	size := fs.Int64("size", 64<<10, "bytes per connection")
	timeout := fs.Duration("timeout", time.Minute, "limit for the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// All connections are opened before any data moves, so that they really
	// are open at the same time.
	cs := make([]*net.TCPConn, 0, *conns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for i := range *conns {
		c, err := dialTCP(ctx, *addr, *timeout)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		cs = append(cs, c)
	}
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			if err := echoRoundTrip(c, *size); err != nil {
				errs[i] = fmt.Errorf("connection %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ok", len(cs), "connections")
	return nil
}

func echoRoundTrip(c *net.TCPConn, size int64) error {
	var data bytes.Buffer
	if _, err := io.Copy(&data, randomReader(size)); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data.Bytes())
		if err == nil {
			err = c.CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if werr := <-errc; werr != nil {
		return fmt.Errorf("send: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	if !bytes.Equal(got, data.Bytes()) {
		return fmt.Errorf("echo differs: sent %d bytes, got %d", data.Len(), len(got))
	}
	return nil
}

// dial connects and reports how that went, for refusal and timeout checks.
func dial(ctx context.Context, fs *flag.FlagSet, args []string, stdout io.Writer) error {
	addr := fs.String("addr", "", "`address` to connect to")
	timeout := fs.Duration("timeout", 30*time.Second, "connect limit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	c, err := dialTCP(ctx, *addr, *timeout)
	if err != nil {
		return fmt.Errorf("after %v: %w", time.Since(start).Round(time.Millisecond), err)
	}
	defer c.Close()
	// A gateway that accepts before it has dialed would show up here: the
	// connection would die on first use instead of failing to connect.
	_, err = bufio.NewReader(c).Peek(1)
	fmt.Fprintf(stdout, "ok connected after %v; first read: %v\n", time.Since(start).Round(time.Millisecond), err)
	return nil
}
