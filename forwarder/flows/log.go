package flows

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Summary is what a live flow's Info and a finished flow's Record both
// say.
type Summary struct {
	Protocol string         `json:"protocol"`
	Src      netip.AddrPort `json:"src"`
	Dst      netip.AddrPort `json:"dst"`
	Name     string         `json:"name,omitempty"`
	Route    string         `json:"route"`
	// Direction is "inbound" for a flow from outside to the app (a
	// published port); outbound flows, the app's own, leave it out.
	Direction string    `json:"direction,omitempty"`
	Start     time.Time `json:"start"`
	BytesUp   uint64    `json:"bytes_up"`
	BytesDown uint64    `json:"bytes_down"`
	// PacketsUp and PacketsDown count datagrams (UDP) or echo messages
	// (ICMP); TCP flows leave them out.
	PacketsUp   *uint64 `json:"packets_up,omitempty"`
	PacketsDown *uint64 `json:"packets_down,omitempty"`
}

// Record is one finished flow, one line of the flow log.
type Record struct {
	Summary
	// Duration is in seconds.
	Duration float64 `json:"duration"`
	End      string  `json:"end"`
}

// DefaultLogBuffer is how many records a Log holds for its writer before
// it drops them.
const DefaultLogBuffer = 4096

// LogOptions configures a Log.
type LogOptions struct {
	// Out receives one JSON line per record. The Log does not close it.
	Out io.Writer
	// Buffer is how many records may wait for Out; zero means
	// DefaultLogBuffer.
	Buffer int
	// Logger hears of dropped records, at most once a second; nil
	// discards.
	Logger *slog.Logger
}

// Log writes Records as JSON lines from one goroutine, fed through a
// bounded queue: Add never blocks, and when the queue is full (a slow or
// failing writer) the record is dropped and counted.
type Log struct {
	out     io.Writer
	log     *slog.Logger
	queue   chan Record
	dropped atomic.Uint64
	written atomic.Uint64
	// lastWarn is when a drop was last logged (Unix nanoseconds).
	lastWarn atomic.Int64
	done     chan struct{}

	mu     sync.RWMutex // held for reading by Add, for writing by Close
	closed bool
}

// NewLog starts a Log's writer goroutine, which runs until Close.
func NewLog(opts LogOptions) *Log {
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultLogBuffer
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Log{out: opts.Out, log: log, queue: make(chan Record, opts.Buffer), done: make(chan struct{})}
	go l.write()
	return l
}

// Add queues r for writing, or drops and counts it if the queue is full
// or the Log is closed.
func (l *Log) Add(r Record) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		l.dropped.Add(1)
		return
	}
	select {
	case l.queue <- r:
	default:
		l.dropped.Add(1)
		l.warn("flow log: the writer is behind; dropping records", "queue", cap(l.queue))
	}
}

// warn logs msg, at most once a second (drops happen in bursts).
func (l *Log) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if now-last < int64(time.Second) || !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn(msg, append(args, "dropped_total", l.dropped.Load())...)
}

// Dropped returns how many records were dropped: queue full, write failed,
// or added after Close.
func (l *Log) Dropped() uint64 { return l.dropped.Load() }

// Written returns how many records were written.
func (l *Log) Written() uint64 { return l.written.Load() }

// closeWait bounds how long Close waits for the queue to drain into a
// writer that is stuck.
const closeWait = 2 * time.Second

// Close writes what is queued and stops the writer. It waits at most
// closeWait: a writer stuck longer (a pipe nobody reads) loses the rest,
// and its goroutine ends once the owner closes Out. It is idempotent.
func (l *Log) Close() {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.queue)
	}
	l.mu.Unlock()
	select {
	case <-l.done:
	case <-time.After(closeWait):
		l.log.Warn("flow log: the writer is stuck; the records still queued are lost", "queued", len(l.queue))
	}
}

// write drains the queue: each batch of records ready at once is one
// Write call.
func (l *Log) write() {
	defer close(l.done)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for r := range l.queue {
		n := uint64(0)
		for {
			enc.Encode(&r) // a Record always encodes
			n++
			var ok bool
			if buf.Len() >= 64<<10 {
				break
			}
			select {
			case r, ok = <-l.queue:
			default:
			}
			if !ok {
				break
			}
		}
		if _, err := l.out.Write(buf.Bytes()); err != nil {
			l.dropped.Add(n)
			l.warn("flow log: write failed; dropping records", "err", err)
		} else {
			l.written.Add(n)
		}
		buf.Reset()
	}
}
