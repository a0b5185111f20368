package flows

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoFlow is returned by Table.Kill for an ID that is not in the table,
// or for a flow that cannot be ended from outside yet.
var ErrNoFlow = errors.New("no such flow")

// Options configures a Table.
type Options struct {
	// Sink, if set, receives the Record of every finished flow. It is
	// called on the flow's goroutine, and must not block (Log.Add does
	// not).
	Sink func(Record)
	// RateInterval is how often each flow's current rate is measured;
	// zero means one second.
	RateInterval time.Duration
}

// Table is the set of live flows and the totals of finished ones. Its
// zero value is not usable; call New. Close stops its rate sampler.
type Table struct {
	sink   func(Record)
	nextID atomic.Uint64

	mu   sync.Mutex
	live map[uint64]*Flow
	// livePeak is the most flows live since live was last rebuilt: a Go
	// map never gives back the room it grew to, so once a flood has gone
	// (a quarter of the peak left) live is copied into a map its size.
	livePeak int
	open     [numProtocols]int // live flows by protocol

	// Counts of finished flows, by protocol and direction (0 up, 1 down).
	bytes, packets [numProtocols][2]atomic.Uint64
	// Flows opened, by protocol and outcome; proxy failures by hop.
	opened    [numProtocols][numOutcomes]atomic.Uint64
	proxyHops [numProtocols][MaxHop + 1]atomic.Uint64

	histMu sync.Mutex
	hists  map[string]*Histogram // dial latency by route

	stop     chan struct{}
	stopped  chan struct{}
	interval time.Duration
	closed   sync.Once
}

// New returns a Table whose rate sampler runs until Close.
func New(opts Options) *Table {
	if opts.RateInterval <= 0 {
		opts.RateInterval = time.Second
	}
	t := &Table{
		sink: opts.Sink, live: make(map[uint64]*Flow), hists: make(map[string]*Histogram),
		stop: make(chan struct{}), stopped: make(chan struct{}), interval: opts.RateInterval,
	}
	go t.sample()
	return t
}

// Close stops the rate sampler and waits for it. Flows may still finish
// afterwards. It is idempotent.
func (t *Table) Close() {
	t.closed.Do(func() { close(t.stop) })
	<-t.stopped
}

// Begin adds a flow in state Dialing. A nil *Table returns a nil *Flow,
// whose methods do nothing, so callers need not check.
func (t *Table) Begin(s Start) *Flow {
	if t == nil {
		return nil
	}
	f := &Flow{Start: s, ID: t.nextID.Add(1), Began: time.Now(), table: t}
	f.up = Half{flow: f, up: true}
	f.down = Half{flow: f}
	t.mu.Lock()
	t.live[f.ID] = f
	t.livePeak = max(t.livePeak, len(t.live))
	t.open[s.Protocol]++
	t.mu.Unlock()
	return f
}

// Blocked counts a flow that policy refused before any dial, and logs it.
func (t *Table) Blocked(s Start) {
	if t == nil {
		return
	}
	t.countOpened(s.Protocol, Blocked, 0)
	f := t.Begin(s)
	f.endAs(EndBlocked)
	f.Finish(EndBlocked)
}

func (t *Table) countOpened(p Protocol, o Outcome, hop int) {
	t.opened[p][o].Add(1)
	if o == ProxyFailed {
		t.proxyHops[p][hop].Add(1)
	}
}

// rebuildMin is the smallest peak worth rebuilding the live map for.
const rebuildMin = 1024

func (t *Table) finish(f *Flow) {
	t.mu.Lock()
	delete(t.live, f.ID)
	if t.livePeak >= rebuildMin && len(t.live) <= t.livePeak/4 {
		live := make(map[uint64]*Flow, len(t.live))
		maps.Copy(live, t.live)
		t.live, t.livePeak = live, len(live)
	}
	t.open[f.Protocol]--
	t.mu.Unlock()
	p := f.Protocol
	t.bytes[p][0].Add(f.up.Bytes())
	t.bytes[p][1].Add(f.down.Bytes())
	t.packets[p][0].Add(f.up.Packets())
	t.packets[p][1].Add(f.down.Packets())
	if t.sink != nil {
		t.sink(f.record(time.Now()))
	}
}

// Kill ends the live flow id through its closer (for TCP, a reset to both
// sides); its log record says "killed".
func (t *Table) Kill(id uint64) error {
	t.mu.Lock()
	f := t.live[id]
	t.mu.Unlock()
	if f == nil {
		return fmt.Errorf("flow %d: %w", id, ErrNoFlow)
	}
	f.kill()
	return nil
}

// Info is a snapshot of one live flow, as the control API shows it.
type Info struct {
	ID uint64 `json:"id"`
	Summary
	State string `json:"state"`
	// Age is in seconds.
	Age float64 `json:"age"`
	// RateUp and RateDown are bytes per second over the last sampling
	// interval.
	RateUp   float64 `json:"rate_up"`
	RateDown float64 `json:"rate_down"`
}

// Snapshot returns the live flows, oldest first.
func (t *Table) Snapshot() []Info {
	now := time.Now()
	t.mu.Lock()
	out := make([]Info, 0, len(t.live))
	for _, f := range t.live {
		out = append(out, Info{
			ID: f.ID, Summary: f.summary(), State: f.State().String(),
			Age: now.Sub(f.Began).Seconds(), RateUp: f.rateUp, RateDown: f.rateDown,
		})
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Info) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// sample measures every live flow's rate once per interval.
func (t *Table) sample() {
	defer close(t.stopped)
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-t.stop:
			return
		case now := <-tick.C:
			dt := now.Sub(last).Seconds()
			last = now
			t.mu.Lock()
			for _, f := range t.live {
				up, down := f.up.Bytes(), f.down.Bytes()
				// A flow younger than the interval has carried its
				// bytes over its age only.
				fdt := min(dt, now.Sub(f.Began).Seconds())
				if fdt <= 0 {
					continue
				}
				f.rateUp, f.rateDown = float64(up-f.lastUp)/fdt, float64(down-f.lastDown)/fdt
				f.lastUp, f.lastDown = up, down
			}
			t.mu.Unlock()
		}
	}
}
