package dns

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// modes are the two ways a Resolver answers: on the writer's goroutine
// (Inline) or on goroutines of the flow.
var modes = []struct {
	name   string
	inline bool
}{{"inline", true}, {"goroutines", false}}

func dialFlow(t *testing.T, r *Resolver, stream bool) *flow {
	t.Helper()
	c, err := r.Open(netip.MustParseAddrPort("192.0.2.53:53"), stream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*flow)
}

func newFlowResolver(t *testing.T, inline bool, a Answerer) *Resolver {
	return newResolverWith(t, Options{Inline: inline, Answerer: a})
}

func frame(q []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)
}

// readWithin reads c once, failing the test if that takes over 5 s (flows
// have no deadlines; Close ends the read at cleanup).
func readWithin(t *testing.T, c net.Conn, b []byte) (int, error) {
	t.Helper()
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := c.Read(b)
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		return r.n, r.err
	case <-time.After(5 * time.Second):
		t.Fatal("Read blocked for 5 s")
		return 0, nil
	}
}

// waitFor polls cond, under f's lock, for up to 5 s.
func waitFor(t *testing.T, f *flow, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		f.mu.Lock()
		ok := cond()
		f.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestStreamFramingAndHalfClose(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := dialFlow(t, newFlowResolver(t, m.inline, &fakeAnswerer{}), true)
			var msgs, want []byte
			for i, name := range []string{"a.test", "b.test"} {
				q := query(uint16(i), name)
				msgs = append(msgs, frame(q)...)
				want = append(want, frame(response(q, "tcp"))...)
			}
			// One byte at a time: queries split across writes still get
			// answered.
			for i := range msgs {
				if _, err := c.Write(msgs[i : i+1]); err != nil {
					t.Fatal(err)
				}
			}
			c.CloseWrite()
			if _, err := c.Write([]byte{0}); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Write after CloseWrite: %v, want net.ErrClosed", err)
			}
			all, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(all, want) {
				t.Fatalf("answers % x, want % x", all, want)
			}
		})
	}
}

// A stream that sends no query for tcpIdle is hung up; each query restarts
// the wait.
func TestStreamIdleHangsUp(t *testing.T) {
	r := newFlowResolver(t, true, &fakeAnswerer{})
	r.idle = 200 * time.Millisecond
	c := dialFlow(t, r, true)
	q := query(4, "a.test")
	start := time.Now()
	for range 3 {
		time.Sleep(100 * time.Millisecond)
		if _, err := c.Write(frame(q)); err != nil {
			t.Fatal(err)
		}
	}
	want := bytes.Repeat(frame(response(q, "tcp")), 3)
	got := make([]byte, 0, len(want))
	for {
		buf := make([]byte, 512)
		n, err := readWithin(t, c, buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read % x, want % x", got, want)
	}
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Fatalf("hung up after %v, before the last query had waited 200ms", d)
	}
}

// A message that is not a query ends a stream, as a server hangs up, once
// the answers before it are read.
func TestStreamEndsOnJunk(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := dialFlow(t, newFlowResolver(t, m.inline, &fakeAnswerer{}), true)
			q := query(3, "a.test")
			c.Write(append(frame(q), frame([]byte("junk"))...))
			all, err := io.ReadAll(c)
			if want := frame(response(q, "tcp")); err != nil || !bytes.Equal(all, want) {
				t.Fatalf("read % x, %v; want % x then EOF", all, err, want)
			}
		})
	}
}

func TestDatagrams(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := dialFlow(t, newFlowResolver(t, m.inline, &fakeAnswerer{}), false)
			c.Write([]byte("junk"))
			q := query(9, "x.test")
			c.Write(q)
			buf := make([]byte, 512)
			n, err := c.Read(buf)
			if want := response(q, "udp"); err != nil || !bytes.Equal(buf[:n], want) {
				t.Fatalf("answer % x, %v; want % x", buf[:n], err, want)
			}
			// A client that never reads: answers pile up to maxInFlight.
			waitFor(t, c, "the junk to be dropped", func() bool { return c.busy == 0 })
			for range maxInFlight + 10 {
				c.Write(q)
			}
			waitFor(t, c, "the answers", func() bool { return c.busy == 0 })
			if len(c.answers) != maxInFlight {
				t.Fatalf("%d answers queued, want %d", len(c.answers), maxInFlight)
			}
			closeUnblocksRead(t, c)
		})
	}
}

func TestStreamBoundsUnread(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := dialFlow(t, newFlowResolver(t, m.inline, &fakeAnswerer{}), true)
			writeUntilBound(t, c, query(1, "a.test"))
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Read after the flow ended: %v", err)
			}
		})
	}
}

func TestCloseUnblocksIdleRead(t *testing.T) {
	for _, m := range modes {
		for _, stream := range []bool{false, true} {
			closeUnblocksRead(t, dialFlow(t, newFlowResolver(t, m.inline, &fakeAnswerer{}), stream))
		}
	}
}

// closeUnblocksRead reads c until it fails, closes c and checks that the
// reads end with net.ErrClosed.
func closeUnblocksRead(t *testing.T, c net.Conn) {
	t.Helper()
	done := make(chan error)
	go func() {
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
}

// writeUntilBound writes q to the stream c, never reading, until Write
// fails, which must be with errTooMuchUnread.
func writeUntilBound(t *testing.T, c net.Conn, q []byte) {
	t.Helper()
	msg := frame(q)
	var err error
	for i := 0; err == nil && i < 10000; i++ {
		_, err = c.Write(msg)
	}
	if !errors.Is(err, errTooMuchUnread) {
		t.Fatalf("client that never reads: %v, want errTooMuchUnread", err)
	}
}

// blockingAnswerer answers nothing until its context ends, counting the
// calls it holds.
type blockingAnswerer struct{ held atomic.Int32 }

func (a *blockingAnswerer) Answer(ctx context.Context, network string, q []byte) ([]byte, error) {
	a.held.Add(1)
	defer a.held.Add(-1)
	<-ctx.Done()
	return nil, ctx.Err()
}

// Queries an Answerer is slow to answer are bounded too: a datagram flow
// holds at most maxInFlight, a stream answers one at a time and ends past
// maxPendingStream. Closing the flow stops them all.
func TestSlowAnswersAreBounded(t *testing.T) {
	a := &blockingAnswerer{}
	r := newFlowResolver(t, false, a)
	d := dialFlow(t, r, false)
	for range 3 * maxInFlight {
		if _, err := d.Write(query(1, "a.test")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, d, "the queries to start", func() bool { return a.held.Load() == maxInFlight })
	if d.busy != maxInFlight {
		t.Fatalf("%d datagram queries in flight, want %d", d.busy, maxInFlight)
	}
	s := dialFlow(t, r, true)
	writeUntilBound(t, s, query(2, "b.test"))
	d.Close()
	s.Close()
	if n := a.held.Load(); n != 0 {
		t.Fatalf("%d Answer calls still running after Close", n)
	}
}

// Closing the resolver hangs up every flow (reads end with EOF), stops the
// queries being answered and leaves no goroutine behind.
func TestResolverCloseStopsFlows(t *testing.T) {
	before := runtime.NumGoroutine()
	a := &blockingAnswerer{}
	r, err := New(Options{Answerer: a})
	if err != nil {
		t.Fatal(err)
	}
	var flows []*flow
	for _, stream := range []bool{false, true} {
		c := dialFlow(t, r, stream)
		q := query(1, "a.test")
		if stream {
			q = frame(q)
		}
		c.Write(q)
		flows = append(flows, c)
	}
	waitFor(t, flows[1], "the queries to start", func() bool { return a.held.Load() == 2 })
	r.Close()
	for _, c := range flows {
		if _, err := readWithin(t, c, make([]byte, 512)); err != io.EOF {
			t.Errorf("stream %v: read after the resolver's Close: %v, want EOF", c.stream, err)
		}
	}
	if _, err := r.Open(netip.MustParseAddrPort("192.0.2.53:53"), true); !errors.Is(err, net.ErrClosed) {
		t.Errorf("dial after Close: %v, want net.ErrClosed", err)
	}
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
