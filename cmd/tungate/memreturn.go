package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"
)

// Memory return: after a flood of flows has gone, the Go runtime keeps the
// freed heap for a while (its scavenger returns it slowly), so RSS stays at
// the flood's peak. tungate checks its open flows every returnEvery and,
// once they have fallen to half of the peak since the last return (and the
// peak was a flood, at least returnMinPeak flows), collects and hands the
// freed memory back to the OS at once.
const (
	returnEvery   = 5 * time.Second
	returnMinPeak = 256
)

// flowTrend decides when freed memory is worth returning.
type flowTrend struct{ peak int }

// fell records the flows open now and reports whether they fell far
// enough below the peak for a return.
func (t *flowTrend) fell(now int) bool {
	if now > t.peak {
		t.peak = now
		return false
	}
	if t.peak >= returnMinPeak && now <= t.peak/2 {
		t.peak = now
		return true
	}
	return false
}

// returnMemory runs until ctx ends, then closes done. flows reports the
// open flows.
func returnMemory(ctx context.Context, flows func() int, log *slog.Logger, done chan<- struct{}) {
	defer close(done)
	var trend flowTrend
	tick := time.NewTicker(returnEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if n := flows(); trend.fell(n) {
				// Twice: what sync.Pools held goes to their victim
				// caches at one collection and is freed at the next.
				debug.FreeOSMemory()
				debug.FreeOSMemory()
				log.Debug("returned freed memory to the OS", "flows", n)
			}
		}
	}
}
