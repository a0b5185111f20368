package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"
)

// Memory return: the Go runtime keeps freed heap for a while (its
// scavenger returns it slowly) and collects only when the heap has
// doubled, so RSS stays at a flood's peak. tungate checks its open flows
// every returnEvery and collects and hands the freed memory back to the
// OS at once when
//   - a flood has gone: the flows fell to half of the peak since the last
//     return, by at least returnMinFlood flows, or
//   - a flood has settled: at least returnMinFlood more flows than at the
//     last return, and no more than at the last check. Setting up a
//     connection allocates several times what an idle one keeps; without
//     this, 10,000 idle connections kept about a tenth more RSS than
//     they hold.
const (
	returnEvery    = 5 * time.Second
	returnMinFlood = 128
)

// flowTrend decides when freed memory is worth returning.
type flowTrend struct {
	peak int // most flows since the last return
	base int // flows at the last return
	prev int // flows at the last check
}

// due records the flows open now and reports whether a flood has gone or
// settled since the last return.
func (t *flowTrend) due(now int) bool {
	prev := t.prev
	t.prev = now
	t.peak = max(t.peak, now)
	gone := now <= t.peak/2 && t.peak-now >= returnMinFlood
	settled := now >= t.base+returnMinFlood && now <= prev
	if !gone && !settled {
		return false
	}
	t.peak, t.base = now, now
	return true
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
			if n := flows(); trend.due(n) {
				// Twice: what sync.Pools held goes to their victim
				// caches at one collection and is freed at the next.
				debug.FreeOSMemory()
				debug.FreeOSMemory()
				log.Debug("returned freed memory to the OS", "flows", n)
			}
		}
	}
}
