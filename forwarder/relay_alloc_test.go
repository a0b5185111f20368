package forwarder

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/forwarder/internal/poll"
)

// relayChunk is what the feeding side writes per operation: the size of a
// TCP super-packet, so that the relay reads about one chunk per write.
const relayChunk = 64 << 10

// loopbackPair returns the two ends of a loopback TCP connection.
func loopbackPair(tb testing.TB) (*net.TCPConn, *net.TCPConn) {
	tb.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	dialed, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	c := <-accepted
	if c == nil {
		tb.Fatal("accept failed")
	}
	tb.Cleanup(func() {
		dialed.Close()
		c.Close()
	})
	return dialed.(*net.TCPConn), c.(*net.TCPConn)
}

// relayedLoopback runs a Relay between two host sockets (the path of every
// proxied flow's upstream) and returns the feeding end and the draining
// end: bytes written to feed come out of drain, counted into fl (nil:
// uncounted).
func relayedLoopback(tb testing.TB, fl *flows.Flow) (feed, drain *net.TCPConn) {
	feed, a := loopbackPair(tb)
	b, drain := loopbackPair(tb)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		relay(ctx, wrapHost(a), wrapHost(b), 0, fl)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
	return feed, drain
}

// parkingRelay starts a relay from app to upstream (host sockets) whose
// upstream parks in a fresh poll set while idle, as a Forwarder's TCP
// flows do; its result arrives on ended.
func parkingRelay(tb testing.TB, ctx context.Context, app, upstream *net.TCPConn, fl *flows.Flow) (set *poll.Set, ended <-chan error) {
	set, err := poll.New()
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	r := startRelay(ctx, wrapHost(app), wrapHost(upstream), 0, fl, set, func(err error) { done <- err })
	go r.runDown()
	tb.Cleanup(func() { set.Close() })
	return set, done
}

// moveChunk writes one chunk into feed and reads it back from drain.
func moveChunk(tb testing.TB, feed, drain *net.TCPConn, chunk, sink []byte) {
	if _, err := feed.Write(chunk); err != nil {
		tb.Fatal(err)
	}
	if _, err := io.ReadFull(drain, sink); err != nil {
		tb.Fatal(err)
	}
}

// countedFlow returns a live flow of a fresh table, as every relayed flow
// has one when the flow table is on (it is by default: the control
// socket).
func countedFlow(tb testing.TB) *flows.Flow {
	table := flows.New(flows.Options{})
	tb.Cleanup(table.Close)
	fl := table.Begin(flows.Start{Protocol: flows.TCP})
	fl.Dialed(0, nil)
	return fl
}

// BenchmarkRelayLoopback relays with and without a flow table entry to
// count into, in the same run, so that the cost of counting shows.
func BenchmarkRelayLoopback(b *testing.B) {
	for _, counted := range []bool{false, true} {
		b.Run(map[bool]string{false: "uncounted", true: "counted"}[counted], func(b *testing.B) {
			var fl *flows.Flow
			if counted {
				fl = countedFlow(b)
			}
			feed, drain := relayedLoopback(b, fl)
			chunk, sink := make([]byte, relayChunk), make([]byte, relayChunk)
			moveChunk(b, feed, drain, chunk, sink) // warm the buffer pool
			b.SetBytes(relayChunk)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				moveChunk(b, feed, drain, chunk, sink)
			}
		})
	}
}

// TestRelayDoesNotAllocate checks the steady state of a busy flow: copying
// a chunk through the relay (wait, read, write, in both the goroutine and
// the notified form, counting the bytes into the flow table) allocates
// nothing.
func TestRelayDoesNotAllocate(t *testing.T) {
	for _, parking := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "parking"}[parking], func(t *testing.T) {
			fl := countedFlow(t)
			var feed, drain *net.TCPConn
			if parking {
				// Downward, through the direction that parks when idle.
				var a, b *net.TCPConn
				drain, a = loopbackPair(t)
				b, feed = loopbackPair(t)
				ctx, cancel := context.WithCancel(context.Background())
				_, ended := parkingRelay(t, ctx, a, b, fl)
				t.Cleanup(func() { cancel(); <-ended })
			} else {
				feed, drain = relayedLoopback(t, fl)
			}
			chunk, sink := make([]byte, relayChunk), make([]byte, relayChunk)
			moveChunk(t, feed, drain, chunk, sink)
			allocs := testing.AllocsPerRun(200, func() { moveChunk(t, feed, drain, chunk, sink) })
			// The feeding and draining sockets allocate nothing either, so
			// this is the relay's own count (rounded down by AllocsPerRun);
			// under the race detector only the byte count below means
			// anything.
			if allocs != 0 && !raceEnabled {
				t.Errorf("%v allocations per %d-byte chunk relayed, want 0", allocs, relayChunk)
			}
			// AllocsPerRun runs the function once more to warm up.
			half := fl.Up()
			if parking {
				half = fl.Down()
			}
			if got, want := half.Bytes(), uint64(202*relayChunk); got != want {
				t.Errorf("flow counted %d bytes, want %d", got, want)
			}
		})
	}
}
