package flows

import (
	"sync/atomic"
	"time"
)

// Totals are the Table's counters, read at once for a metrics scrape.
type Totals struct {
	// Open counts live flows by protocol.
	Open [numProtocols]int
	// Bytes and Packets count what every flow carried so far, live ones
	// included, by protocol and direction (0 up, 1 down). Packets count
	// datagrams (UDP) and echo messages (ICMP).
	Bytes, Packets [numProtocols][2]uint64
	// Opened counts flows opened by protocol and outcome; ProxyHops
	// splits the ProxyFailed ones by hop index (1 to MaxHop).
	Opened    [numProtocols][numOutcomes]uint64
	ProxyHops [numProtocols][MaxHop + 1]uint64
	// DialLatency is the upstream dial latency by route.
	DialLatency map[string]HistogramSnapshot
}

// Totals returns the counters now. It walks the live flows, so it costs
// in proportion to them, at scrape time only.
func (t *Table) Totals() Totals {
	var tt Totals
	for p := range numProtocols {
		for d := range 2 {
			tt.Bytes[p][d] = t.bytes[p][d].Load()
			tt.Packets[p][d] = t.packets[p][d].Load()
		}
		for o := range numOutcomes {
			tt.Opened[p][o] = t.opened[p][o].Load()
		}
		for h := range MaxHop + 1 {
			tt.ProxyHops[p][h] = t.proxyHops[p][h].Load()
		}
	}
	t.mu.Lock()
	tt.Open = t.open
	for _, f := range t.live {
		p := f.Protocol
		tt.Bytes[p][0] += f.up.Bytes()
		tt.Bytes[p][1] += f.down.Bytes()
		tt.Packets[p][0] += f.up.Packets()
		tt.Packets[p][1] += f.down.Packets()
	}
	t.mu.Unlock()
	t.histMu.Lock()
	tt.DialLatency = make(map[string]HistogramSnapshot, len(t.hists))
	for route, h := range t.hists {
		tt.DialLatency[route] = h.snapshot()
	}
	t.histMu.Unlock()
	return tt
}

// DialBuckets are the upper bounds, in seconds, of the dial latency
// histogram's buckets.
var DialBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Histogram counts durations into DialBuckets with atomic adds.
type Histogram struct {
	counts [len(DialBuckets) + 1]atomic.Uint64 // the last is +Inf
	count  atomic.Uint64
	sumNs  atomic.Uint64
}

// HistogramSnapshot is a Histogram read at one time: Buckets are
// cumulative counts, one per DialBuckets bound.
type HistogramSnapshot struct {
	Count   uint64
	Sum     float64 // seconds
	Buckets [len(DialBuckets)]uint64
}

func (h *Histogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(DialBuckets) && s > DialBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(max(d, 0)))
	h.count.Add(1)
}

func (h *Histogram) snapshot() HistogramSnapshot {
	var s HistogramSnapshot
	var cum uint64
	for i := range DialBuckets {
		cum += h.counts[i].Load()
		s.Buckets[i] = cum
	}
	// Count is at least the buckets' sum, so that +Inf is never below the
	// last bound even while observations land during the read.
	s.Count = max(h.count.Load(), cum+h.counts[len(DialBuckets)].Load())
	s.Sum = float64(h.sumNs.Load()) / float64(time.Second)
	return s
}

// maxRoutes bounds the routes that get a histogram of their own; the rest
// share one named "other", so that a label's values stay few.
const maxRoutes = 64

// dialLatency returns route's histogram, made on first use.
func (t *Table) dialLatency(route string) *Histogram {
	t.histMu.Lock()
	defer t.histMu.Unlock()
	h := t.hists[route]
	if h == nil {
		if len(t.hists) >= maxRoutes {
			route = "other"
			if h = t.hists[route]; h != nil {
				return h
			}
		}
		h = &Histogram{}
		t.hists[route] = h
	}
	return h
}
