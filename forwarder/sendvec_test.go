package forwarder_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder"
	"github.com/tungate/tungate/stack"
	"github.com/tungate/tungate/stack/flow"
)

// vectorSpy hands flows to the forwarder and reports on saw whether each
// accepted app connection can lend its buffers (forwarder.VectorSender),
// which puts its upload on the path without a relay buffer.
type vectorSpy struct {
	stack.Handler
	saw chan bool
}

func (s vectorSpy) HandleTCP(r flow.TCPRequest) { s.Handler.HandleTCP(spiedRequest{r, s.saw}) }

type spiedRequest struct {
	flow.TCPRequest
	saw chan bool
}

func (r spiedRequest) Accept(ctx context.Context) (net.Conn, error) {
	c, err := r.TCPRequest.Accept(ctx)
	if err == nil {
		_, ok := c.(forwarder.VectorSender)
		select {
		case r.saw <- ok:
		default:
		}
	}
	return c, err
}

// slowServer accepts flows that read at most chunk bytes per pause into a
// small socket buffer, so that the gateway's host socket is full most of
// the time, and sends got a hash of all it read up to EOF, or the read's
// error. It writes the hash back to the app, too.
func slowServer(t *testing.T, chunk int, pause time.Duration, got chan<- result) string {
	return listen(t, func(c *net.TCPConn) {
		c.SetReadBuffer(64 << 10)
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		h := sha256.New()
		buf := make([]byte, chunk)
		var n int64
		for {
			m, err := c.Read(buf)
			h.Write(buf[:m])
			n += int64(m)
			if err != nil {
				sum := h.Sum(nil)
				if err == io.EOF {
					err = nil
					c.Write(sum)
				}
				got <- result{n, sum, err}
				return
			}
			time.Sleep(pause)
		}
	})
}

type result struct {
	n   int64
	sum []byte
	err error
}

// TestTCPUploadWithoutRelayBufferIntact uploads 8 MiB to a server that
// reads slowly (the writev path waits for room again and again), then
// half-closes: the server gets every byte once and in order, and its
// answer after the app's FIN comes back.
func TestTCPUploadWithoutRelayBufferIntact(t *testing.T) {
	got := make(chan result, 1)
	addr := slowServer(t, 256<<10, time.Millisecond, got)
	saw := make(chan bool, 1)
	// A small send buffer on the gateway's host socket, too: writev
	// finds it full again and again.
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := loopbackTo(addr)(ctx, network, address)
		if err == nil {
			err = c.(*net.TCPConn).SetWriteBuffer(16 << 10)
		}
		return c, err
	}
	fwd, app, closeGW := newGatewayWith(t, dialerFunc(dial), func(h stack.Handler) stack.Handler { return vectorSpy{h, saw} })
	t.Cleanup(func() { fwd.Close(); closeGW() })
	c := dialApp(t, app, 80)
	if !<-saw {
		t.Fatal("the app connection is no forwarder.VectorSender: the upload copies through a relay buffer")
	}
	want := make([]byte, 8<<20)
	rand.Read(want)
	if _, err := c.Write(want); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(want)
	select {
	case r := <-got:
		if r.err != nil || r.n != int64(len(want)) || !bytes.Equal(r.sum, sum[:]) {
			t.Fatalf("server read %d bytes (%v), hash %x; want %d bytes, hash %x", r.n, r.err, r.sum, len(want), sum)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server did not get the upload within 20s")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	back, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(back, sum[:]) {
		t.Fatalf("after the half-close the app read %x, %v; want the server's hash %x", back, err, sum)
	}
}

// TestTCPUploadResetMidTransfer resets the app's connection while its
// upload waits for a slow server: the server sees a reset, not an EOF,
// after a prefix of the bytes sent.
func TestTCPUploadResetMidTransfer(t *testing.T) {
	got := make(chan result, 1)
	addr := slowServer(t, 64<<10, 2*time.Millisecond, got)
	app := newPair(t, loopbackTo(addr))
	ep, c := dialAppEndpoint(t, app, 84)
	want := make([]byte, 64<<20)
	rand.Read(want)
	go c.Write(want) // fails once reset
	time.Sleep(300 * time.Millisecond)
	resetApp(ep, c)
	select {
	case r := <-got:
		if !errors.Is(r.err, syscall.ECONNRESET) {
			t.Fatalf("server read %d bytes, then %v; want a connection reset", r.n, r.err)
		}
		if r.n == 0 || r.n >= int64(len(want)) {
			t.Fatalf("server read %d bytes before the reset; want part of the %d sent", r.n, len(want))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server saw no end within 10s of the app's reset")
	}
}
