package dns

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Bounds on what one flow may hold for a client that writes queries and
// never reads the answers, or writes them faster than they are answered:
// without them its memory would grow without bound.
const (
	// maxInFlight bounds a datagram flow's queries unanswered plus answers
	// unread; further queries are dropped, as by a busy server, and the
	// client retries.
	maxInFlight = 64
	// maxPendingStream bounds a stream flow's bytes of queries unanswered
	// plus answers unread; a Write past it ends the flow.
	maxPendingStream = 64 << 10
)

// errTooMuchUnread ends a DNS-over-TCP flow whose client does not read.
var errTooMuchUnread = errors.New("dns: client sent queries without reading the answers")

// errNoDeadlines: the forwarder ends flows by closing them, never by
// deadlines.
var errNoDeadlines = errors.New("dns: deadlines are not supported on resolver flows")

// flow is the resolver's side of one flow it serves: each Write takes
// queries, each Read returns answers. A datagram flow (UDP) takes one query
// per Write and returns one answer per Read; a stream flow is DNS over TCP
// (RFC 1035 4.2.2: a two-byte length, then the message), answered in
// order, where CloseWrite from the client ends the reads once every answer
// is out, as half-close should, and the resolver hangs up after tcpIdle
// without a query. Nothing here blocks but Read.
//
// With Options.Inline the writer's goroutine makes the answers; otherwise
// goroutines of the flow do (one per datagram, one at a time for a
// stream), and Close stops them and waits for them.
type flow struct {
	r      *Resolver
	stream bool
	addr   net.Addr
	ctx    context.Context // ends with Close or the resolver's; bounds the answers
	cancel context.CancelFunc
	wg     sync.WaitGroup // the answering goroutines
	idle   *time.Timer    // stream: hangs up after tcpIdle without a query

	mu          sync.Mutex
	ready       sync.Cond
	answers     []answer // datagram: answers to read
	busy        int      // datagram: queries being answered
	in          []byte   // stream: the start of a query
	queries     [][]byte // stream: whole queries waiting for the worker
	pending     int      // stream: bytes of queries not answered yet
	working     bool     // stream: the worker goroutine runs
	out         []byte   // stream: framed answers to read
	writeClosed bool     // the client half-closed
	hungUp      bool     // the resolver ended the conversation
	closed      bool
}

func (r *Resolver) newFlow(dst netip.AddrPort, stream bool) (net.Conn, error) {
	f := &flow{r: r, stream: stream, addr: net.UDPAddrFromAddrPort(dst)}
	if stream {
		f.addr = net.TCPAddrFromAddrPort(dst)
	}
	f.ready.L = &f.mu
	f.ctx, f.cancel = context.WithCancel(r.ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		f.cancel()
		return nil, fmt.Errorf("dial resolver %s: %w", dst, net.ErrClosed)
	}
	r.flows[f] = struct{}{}
	if stream {
		// The timer's goroutine only marks f hung up; Close stops it.
		f.idle = time.AfterFunc(r.idle, f.hangUp)
	}
	return f, nil
}

// Write takes queries. It never blocks: a datagram query beyond
// maxInFlight is dropped, and a stream beyond maxPendingStream ends with
// errTooMuchUnread.
func (f *flow) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed || f.writeClosed:
		return 0, net.ErrClosed
	case f.hungUp:
		return len(b), nil // nobody listens any more
	case !f.stream:
		f.takeDatagram(b, netip.AddrPort{})
		return len(b), nil
	}
	f.takeStream(b)
	if f.pending+len(f.out) > maxPendingStream {
		f.closeLocked()
		return 0, errTooMuchUnread
	}
	return len(b), nil
}

// answer is a datagram flow's answer; from is the address the query went
// to, for a flow of many (OpenPackets).
type answer struct {
	msg  []byte
	from netip.AddrPort
}

// takeDatagram answers the query q, sent to the address to (the zero
// AddrPort on a flow of one address).
func (f *flow) takeDatagram(q []byte, to netip.AddrPort) {
	if f.busy+len(f.answers) >= maxInFlight {
		return
	}
	if f.r.opts.Inline {
		f.deliver(f.r.answer(f.ctx, "udp", q), to)
		return
	}
	q = bytes.Clone(q)
	f.busy++
	ok := f.spawn(func() {
		ans := f.r.answer(f.ctx, "udp", q)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.busy--
		f.deliver(ans, to)
	})
	if !ok {
		f.busy--
	}
}

// deliver queues a datagram answer from from; nil (no answer) is
// dropped.
func (f *flow) deliver(ans []byte, from netip.AddrPort) {
	if ans != nil && !f.closed {
		f.answers = append(f.answers, answer{msg: ans, from: from})
	}
	f.ready.Broadcast()
}

// takeStream frames b, which may hold parts of queries, and answers the
// whole queries or hands them to the worker.
func (f *flow) takeStream(b []byte) {
	f.in = append(f.in, b...)
	rest := f.in
	for len(rest) >= 2 && !f.hungUp {
		n := 2 + int(binary.BigEndian.Uint16(rest))
		if len(rest) < n {
			break
		}
		q := rest[2:n]
		rest = rest[n:]
		f.idle.Reset(f.r.idle)
		if f.r.opts.Inline {
			f.frame(f.r.answer(f.ctx, "tcp", q))
			continue
		}
		f.queries = append(f.queries, bytes.Clone(q))
		f.pending += len(q)
	}
	if f.hungUp {
		return
	}
	f.in = append([]byte(nil), rest...) // let the framed bytes go
	if len(f.queries) > 0 && !f.working {
		f.working = f.spawn(f.work)
	}
}

// work answers the stream's queries in order, as they come.
func (f *flow) work() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.queries) > 0 && !f.closed && !f.hungUp {
		q := f.queries[0]
		f.queries[0] = nil
		f.queries = f.queries[1:]
		f.mu.Unlock()
		ans := f.r.answer(f.ctx, "tcp", q)
		f.mu.Lock()
		f.pending -= len(q)
		if !f.closed {
			f.frame(ans)
		}
	}
	f.working = false
	f.ready.Broadcast() // a half-closed stream may have ended
}

// frame queues a stream answer. No answer (a message that is not a query,
// or the resolver closing) or one too long for the length prefix ends the
// conversation, as a server would hang up.
func (f *flow) frame(ans []byte) {
	if ans == nil || len(ans) > 0xffff {
		f.hangUpLocked()
		return
	}
	f.out = binary.BigEndian.AppendUint16(f.out, uint16(len(ans)))
	f.out = append(f.out, ans...)
	f.ready.Broadcast()
}

// spawn runs fn on a goroutine that both Close and the resolver's Close
// wait for; false if the resolver is closing.
func (f *flow) spawn(fn func()) bool {
	f.wg.Add(1)
	ok := f.r.talks.Go(func() {
		defer f.wg.Done()
		fn()
	})
	if !ok {
		f.wg.Done()
	}
	return ok
}

// Read returns the next answer (cut to b for a datagram, as a datagram
// socket would), io.EOF once the conversation has ended and every answer
// is read, and net.ErrClosed after Close.
func (f *flow) Read(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for !f.closed && len(f.answers) == 0 && len(f.out) == 0 && !f.ended() {
		f.ready.Wait()
	}
	switch {
	case f.closed:
		return 0, net.ErrClosed
	case len(f.answers) > 0:
		n, _ := f.nextAnswer(b)
		return n, nil
	case len(f.out) > 0:
		n := copy(b, f.out)
		f.out = f.out[n:]
		if len(f.out) == 0 {
			f.out = nil
		}
		return n, nil
	}
	return 0, io.EOF
}

// nextAnswer takes the first answer into b, cut to b's length.
func (f *flow) nextAnswer(b []byte) (int, netip.AddrPort) {
	a := f.answers[0]
	f.answers[0] = answer{}
	f.answers = f.answers[1:]
	return copy(b, a.msg), a.from
}

// ended reports whether no answer is to come: the resolver hung up, or the
// client half-closed and each of its queries has been answered.
func (f *flow) ended() bool {
	return f.hungUp || f.writeClosed && f.busy == 0 && !f.working
}

// CloseWrite is the client's half-close: no more queries.
func (f *flow) CloseWrite() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writeClosed = true
	f.in = nil
	f.ready.Broadcast()
	return nil
}

// hangUp ends the conversation from the resolver's side.
func (f *flow) hangUp() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hangUpLocked()
}

func (f *flow) hangUpLocked() {
	f.hungUp = true
	f.in, f.queries = nil, nil
	f.ready.Broadcast()
}

// Close ends the flow, wakes a blocked Read and waits for the queries
// being answered. It is idempotent.
func (f *flow) Close() error {
	f.mu.Lock()
	f.closeLocked()
	f.mu.Unlock()
	if f.idle != nil {
		f.idle.Stop()
	}
	f.wg.Wait()
	f.r.mu.Lock()
	delete(f.r.flows, f)
	f.r.mu.Unlock()
	return nil
}

func (f *flow) closeLocked() {
	f.closed = true
	f.cancel()
	f.answers, f.in, f.queries, f.out = nil, nil, nil, nil
	f.ready.Broadcast()
}

func (f *flow) LocalAddr() net.Addr              { return f.addr }
func (f *flow) RemoteAddr() net.Addr             { return f.addr }
func (f *flow) SetDeadline(time.Time) error      { return errNoDeadlines }
func (f *flow) SetReadDeadline(time.Time) error  { return errNoDeadlines }
func (f *flow) SetWriteDeadline(time.Time) error { return errNoDeadlines }
