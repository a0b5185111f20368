package forwarder

import (
	"sync/atomic"
	"testing"
	"time"
)

func newTestHalfClosed(peerClosed *atomic.Bool) (*halfClosed, *atomic.Int32) {
	var kills atomic.Int32
	h := newHalfClosed(50*time.Millisecond, func() { kills.Add(1) }, peerClosed.Load)
	return h, &kills
}

func TestHalfClosedKillsIdleAfterEOF(t *testing.T) {
	var peer atomic.Bool
	var kills atomic.Int32
	// Progress every 150 ms for 450 ms, past the 400 ms timeout: only a
	// pushed deadline survives it, and a scheduler stall of up to 250 ms
	// under a loaded test run does not fire it early.
	h := newHalfClosed(400*time.Millisecond, func() { kills.Add(1) }, peer.Load)
	defer h.close()
	h.sideClosed()
	for range 3 {
		time.Sleep(150 * time.Millisecond)
		h.writeStart()
		h.writeEnd()
	}
	if kills.Load() != 0 {
		t.Fatal("killed while bytes moved")
	}
	time.Sleep(time.Second)
	if kills.Load() != 1 || !h.fired() {
		t.Fatalf("kills = %d after idle past the timeout, want 1", kills.Load())
	}
}

func TestHalfClosedStuckWrite(t *testing.T) {
	var peer atomic.Bool
	h, kills := newTestHalfClosed(&peer)
	defer h.close()
	h.writeStart() // a paused reader: back-pressure, not dead
	time.Sleep(200 * time.Millisecond)
	if kills.Load() != 0 {
		t.Fatal("killed a stuck write whose source is open")
	}
	peer.Store(true) // now the source has closed
	time.Sleep(200 * time.Millisecond)
	if kills.Load() != 1 {
		t.Fatalf("kills = %d for a stuck write whose source closed, want 1", kills.Load())
	}
}

func TestHalfClosedIdleOpenFlowUntouched(t *testing.T) {
	var peer atomic.Bool
	h, kills := newTestHalfClosed(&peer)
	h.writeStart()
	h.writeEnd()
	time.Sleep(200 * time.Millisecond)
	if kills.Load() != 0 || h.armed.Load() {
		t.Fatalf("idle open flow: kills %d, timer armed %v; want neither", kills.Load(), h.armed.Load())
	}
	h.close()
	var nilWatch *halfClosed
	nilWatch.writeStart() // a relay without the limit
	nilWatch.sideClosed()
	nilWatch.close()
}
