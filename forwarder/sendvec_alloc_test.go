package forwarder

import (
	"io"
	"testing"
)

// fixedVectors lends the same slices on every call and reports how much
// the last send took.
type fixedVectors struct {
	vecs [][]byte
	sent int
}

func (f *fixedVectors) SendVectors(send func([][]byte) (int, error)) (int, error) {
	n, err := send(f.vecs)
	f.sent += n
	return n, err
}

// TestSendFromDoesNotAllocate: sending lent slices to a host socket with
// writev, waiting for room while the reader drains it, allocates nothing,
// and every byte lent is counted as sent.
func TestSendFromDoesNotAllocate(t *testing.T) {
	a, drain := loopbackPair(t)
	go io.Copy(io.Discard, drain)
	h := wrapHost(a).(*hostConn)
	src := &fixedVectors{vecs: [][]byte{make([]byte, 64<<10), make([]byte, 100), make([]byte, 200<<10)}}
	total := 0
	allocs := testing.AllocsPerRun(200, func() {
		n, rerr, werr := h.sendFrom(src)
		if rerr != nil || werr != nil || n == 0 {
			t.Fatalf("sendFrom = %d, %v, %v", n, rerr, werr)
		}
		total += n
	})
	if allocs != 0 && !raceEnabled {
		t.Errorf("%v allocations per sendFrom, want 0", allocs)
	}
	if total != src.sent {
		t.Errorf("sendFrom returned %d bytes in all, the source saw %d taken", total, src.sent)
	}
}
