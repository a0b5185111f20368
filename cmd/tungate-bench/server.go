package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Ports of the benchmark's own servers on serverIP, and message sizes.
const (
	iperfPort       = 5201
	requestPort     = 7101 // TCP: read a request, answer, close
	udpEchoPort     = 7102 // UDP: echo every datagram
	holdPort        = 7103 // TCP: accept and keep idle connections open
	requestSize     = 32
	responseSize    = 64
	udpPayloadBytes = 60 // the size of a small DNS query
)

// runServe runs the TCP request, UDP echo and idle-hold servers on -addr
// until ctx ends.
func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", serverIP, "address to listen on")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	ip, err := netip.ParseAddr(*addr)
	if err != nil {
		return fmt.Errorf("%w: -addr %q is not an IP address", errUsage, *addr)
	}
	var lc net.ListenConfig
	request, err := lc.Listen(ctx, "tcp", netip.AddrPortFrom(ip, requestPort).String())
	if err != nil {
		return fmt.Errorf("listen for requests: %w", err)
	}
	hold, err := lc.Listen(ctx, "tcp", netip.AddrPortFrom(ip, holdPort).String())
	if err != nil {
		request.Close()
		return fmt.Errorf("listen for idle connections: %w", err)
	}
	echo, err := lc.ListenPacket(ctx, "udp", netip.AddrPortFrom(ip, udpEchoPort).String())
	if err != nil {
		request.Close()
		hold.Close()
		return fmt.Errorf("listen for udp: %w", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { acceptLoop(request, answerRequest) })
	wg.Go(func() { acceptLoop(hold, holdIdle) })
	// Two readers so that one slow reply does not stall the other clients.
	wg.Go(func() { echoLoop(echo) })
	wg.Go(func() { echoLoop(echo) })
	<-ctx.Done()
	request.Close()
	hold.Close()
	echo.Close()
	wg.Wait()
	return nil
}

// acceptLoop serves each connection in its own goroutine until l closes.
// The server is killed at the end of the run, so per-connection goroutines
// are not joined.
func acceptLoop(l net.Listener, serve func(net.Conn)) {
	for {
		c, err := l.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE: back off
			continue
		}
		go serve(c)
	}
}

// answerRequest reads one request, answers it and closes first, so the
// server (not the client or the gateway) holds TIME_WAIT and the client's
// ports stay free for the next connection.
func answerRequest(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, responseSize)
	if _, err := io.ReadFull(c, buf[:requestSize]); err != nil {
		return
	}
	_, _ = c.Write(buf)
}

// holdIdle keeps the connection open until the client closes it.
func holdIdle(c net.Conn) {
	defer c.Close()
	_, _ = io.Copy(io.Discard, c)
}

func echoLoop(pc net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}
