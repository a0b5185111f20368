package stack

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
)

// waitQueued waits until c has at least n bytes ready.
func waitQueued(t *testing.T, c *appConn, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		got := 0
		c.SendVectors(func(vecs [][]byte) (int, error) {
			for _, v := range vecs {
				got += len(v)
			}
			return 0, nil
		})
		if got >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("fewer than %d bytes queued after 5s", n)
}

// sendAll takes everything c has, at most limit bytes per SendVectors
// call, until the peer's FIN, and returns the bytes.
func sendAll(t *testing.T, c *appConn, limit int) []byte {
	t.Helper()
	var got []byte
	send := func(vecs [][]byte) (int, error) {
		n := 0
		for _, v := range vecs {
			take := min(len(v), limit-n)
			got = append(got, v[:take]...)
			if n += take; n == limit {
				break
			}
		}
		return n, nil
	}
	for {
		if err := c.WaitReadable(); err != nil {
			t.Fatalf("WaitReadable: %v", err)
		}
		if _, err := c.SendVectors(send); err == io.EOF {
			return got
		} else if err != nil {
			t.Fatalf("SendVectors: %v", err)
		}
	}
}

// TestSendVectorsPartialSendsKeepTheRest: a send that takes only part of
// what it is lent (a few bytes, or most of a segment) leaves the rest
// queued, so that every byte is sent once and in order, then io.EOF.
func TestSendVectorsPartialSendsKeepTheRest(t *testing.T) {
	for _, limit := range []int{7, 1000, 100 << 10} {
		c, peer := appConnPair(t)
		want := make([]byte, 1<<20)
		for i := range want {
			want[i] = byte(i * 7 / 5)
		}
		go func() {
			peer.Write(want)
			peer.(*gonet.TCPConn).CloseWrite()
		}()
		if got := sendAll(t, c, limit); !bytes.Equal(got, want) {
			t.Fatalf("limit %d: sent %d bytes that differ from the %d written", limit, len(got), len(want))
		}
	}
}

// TestSendVectorsBounds: one call lends at most MaxSendVectors slices and
// MaxSendBytes bytes, and a send's error comes back with its count.
func TestSendVectorsBounds(t *testing.T) {
	c, peer := appConnPair(t)
	const size = 3 << 20
	go peer.Write(make([]byte, size))
	waitQueued(t, c, 1) // what fits the window; not necessarily all
	errStop := errors.New("stop")
	n, err := c.SendVectors(func(vecs [][]byte) (int, error) {
		total := 0
		for _, v := range vecs {
			total += len(v)
		}
		if len(vecs) > MaxSendVectors || total > MaxSendBytes || total == 0 {
			t.Errorf("lent %d slices of %d bytes", len(vecs), total)
		}
		return 1, errStop
	})
	if n != 1 || err != errStop {
		t.Fatalf("SendVectors = %d, %v; want 1 and the send's error", n, err)
	}
}

// TestSendVectorsNothingQueuedAndClosed: with nothing queued send is not
// called; after Close SendVectors fails as closed.
func TestSendVectorsNothingQueuedAndClosed(t *testing.T) {
	c, _ := appConnPair(t)
	called := false
	send := func([][]byte) (int, error) { called = true; return 0, nil }
	if n, err := c.SendVectors(send); n != 0 || err != nil || called {
		t.Fatalf("SendVectors with nothing queued = %d, %v (send called: %v); want 0, nil", n, err, called)
	}
	c.Close()
	if _, err := c.SendVectors(send); !errors.Is(err, net.ErrClosed) || called {
		t.Fatalf("SendVectors after Close: %v (send called: %v); want net.ErrClosed", err, called)
	}
}

// TestSendVectorsDoesNotAllocate: a call that lends and consumes data
// allocates nothing.
func TestSendVectorsDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	c, peer := appConnPair(t)
	go peer.Write(make([]byte, 4<<20))
	waitQueued(t, c, 64<<10)
	send := func(vecs [][]byte) (int, error) { return 100, nil }
	allocs := testing.AllocsPerRun(100, func() {
		if n, err := c.SendVectors(send); n != 100 || err != nil {
			t.Fatalf("SendVectors = %d, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per SendVectors, want 0", allocs)
	}
}

// TestSendVectorsCloseDuringSend: a Close while send holds the slices
// leaves them intact, and the endpoint is closed once SendVectors
// returns: the peer then reads the end of the stream.
func TestSendVectorsCloseDuringSend(t *testing.T) {
	c, peer := appConnPair(t)
	want := bytes.Repeat([]byte("0123456789"), 10000)
	go peer.Write(want)
	waitQueued(t, c, len(want))
	var lent []byte
	n, err := c.SendVectors(func(vecs [][]byte) (int, error) {
		c.Close()
		for _, v := range vecs {
			lent = append(lent, v...)
		}
		return len(lent), nil
	})
	if err != nil || n != len(want) || !bytes.Equal(lent, want) {
		t.Fatalf("SendVectors = %d, %v, lent %d bytes (equal: %v); want all %d", n, err, len(lent), bytes.Equal(lent, want), len(want))
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = peer.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("peer read after the close: %v; want the end of the connection", err)
	}
	if _, err := c.SendVectors(func([][]byte) (int, error) { return 0, nil }); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("SendVectors after Close: %v; want net.ErrClosed", err)
	}
}
