package main

import (
	"context"
	"log/slog"
	"os"
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
	gc := newGCPace(log)
	defer gc.flood(false)
	tick := time.NewTicker(returnEvery)
	defer tick.Stop()
	pace := time.NewTicker(paceEvery)
	defer pace.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pace.C:
			gc.check(flows())
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

// floodGCPercent is the heap growth, in percent of the live heap, that
// starts the next collection (GOGC) while a flood of flows is rising.
// Setting up a connection makes several times the garbage that an idle
// one keeps; at Go's default of 100 it piles up to the size of the live
// heap between collections, in the same spans as the connections that
// stay, and once freed those holes are RSS that no return can give back:
// 20 MB of the 141 MB heap in use with 19,000 idle connections (1.1 KB a
// connection), 8 MB at 25. Only while a flood rises (checked every
// paceEvery): at 25 all the time, a connection cost 0.31-0.33 CPU s per
// 1,000 in tungate-bench's conn row instead of 0.27-0.29, for no gain
// when few flows are open.
const floodGCPercent = 25

// paceEvery is how often the returner checks whether a flood rises: a
// burst of 10,000 connections opens within a few seconds, between two
// returnEvery checks.
const paceEvery = time.Second

// gcPace lowers the GC percent while a flood rises and restores it after.
type gcPace struct {
	fixed   bool // GOGC is set in the environment: it is the user's choice
	low     bool // floodGCPercent is in force
	percent int  // the percent to restore
	last    int  // flows at the last check
	log     *slog.Logger
}

func newGCPace(log *slog.Logger) *gcPace {
	return &gcPace{fixed: os.Getenv("GOGC") != "", log: log}
}

// check records the flows open now: a flood rises while there are at
// least returnMinFlood more than at the last check.
func (g *gcPace) check(now int) {
	rising := now >= g.last+returnMinFlood
	g.last = now
	g.flood(rising)
}

// flood sets floodGCPercent when rising and the previous percent when
// not, on a change only.
func (g *gcPace) flood(rising bool) {
	if g.fixed || rising == g.low {
		return
	}
	g.low = rising
	if rising {
		g.percent = debug.SetGCPercent(floodGCPercent)
	} else {
		debug.SetGCPercent(g.percent)
	}
	g.log.Debug("gc percent", "flood", rising)
}
