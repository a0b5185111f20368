package forwarder

import (
	"context"
	"log/slog"

	"github.com/tungate/tungate/forwarder/admission"
	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/forwarder/route"
	"github.com/tungate/tungate/stack/flow"
)

// HandleTCP implements stack.Handler. It decides the flow's fate and dials
// the destination before the app's handshake completes, so that a refused
// or unreachable destination reaches the app as a reset rather than as a
// connection that dies later.
//
// The flow runs on the caller's goroutine (the stack's, one per SYN) until
// its upstream first parks: another goroutine per connection would cost a
// start and a stack growth for nothing. Close waits for the flow all the
// same: it is held in the Forwarder's group from here to the relay's end.
func (f *Forwarder) HandleTCP(r flow.TCPRequest) {
	fl, d, tf, ok := f.admit(route.TCP, r)
	if !ok {
		return
	}
	t := f.dialTicket(r, fl, d)
	if t == nil {
		tf.Finish(flows.EndBlocked)
		return
	}
	release, ok := f.flows.Hold()
	if !ok { // Close has begun
		t.Release()
		tf.Finish(flows.EndClosed)
		r.Refuse()
		return
	}
	if !f.forwardTCP(f.ctx, r, fl, d, t, tf, release) {
		release()
	}
}

// forwardTCP holds t's pending share while it dials and while the app's
// handshake runs (bounded by Options.HandshakeTimeout), and the flow until
// the relay ends; tf is its entry in the flow table. It reports whether
// the relay started, which then calls release when it ends.
func (f *Forwarder) forwardTCP(ctx context.Context, r flow.TCPRequest, fl *route.Flow, d route.Decision, t *admission.Ticket,
	tf *flows.Flow, release func()) bool {
	growStack() // the dial and the handshake go deep at once (stackgrow.go)
	host, err := f.open(ctx, fl, d, tf)
	if err != nil {
		t.Release()
		f.log.Debug("tcp dial failed", "src", fl.Src, "dst", fl.Dst, "err", err)
		r.Refuse()
		if outOfFDs(err) {
			f.lim.gate.Count(admission.FDs)
			f.refused(admission.FDs, fl.Proto, fl.Src, fl.Dst)
		}
		return false
	}
	hsCtx, cancel := context.WithTimeout(ctx, f.opts.HandshakeTimeout)
	app, err := r.Accept(hsCtx)
	cancel()
	t.Done()
	if err != nil {
		t.Release()
		host.Close()
		tf.Finish(flows.EndResetByApp) // the app gave up, or never completed its handshake
		f.log.Debug("tcp accept failed", "src", fl.Src, "dst", fl.Dst, "err", err)
		return false
	}
	tcf := &tcpFlow{f: f, fl: fl, t: t, tf: tf}
	tcf.live.app, tcf.live.host = app, host
	if !f.live.add(&tcf.live) { // Close is resetting every flow: this one too
		resetOrClose(app)
		abort(host)
		t.Release()
		tf.Finish(flows.EndClosed)
		return false
	}
	tf.SetCloser(tcf.closeBoth)
	if f.log.Enabled(ctx, slog.LevelDebug) { // boxing the addresses allocates, even unlogged
		f.log.Debug("tcp open", "src", fl.Src, "dst", fl.Dst)
	}
	// The flow is held in the Forwarder's group (release) rather than
	// by a goroutine: an idle flow holds none (relay.go). Its down
	// direction gets a fresh goroutine rather than this one, whose stack
	// grew deep in the handshake and the dial: kept until the flow first
	// parks, that stack doubled the RSS of a burst of new connections
	// (tungate-bench's idle row, 10 -> 19 KB per connection) for no
	// measurable CPU.
	tcf.release = release
	tcf.start(context.Background(), app, host, f.opts.HalfClosedTimeout, tf, f.poll, tcf.end)
	go tcf.runDown()
	return true
}

// tcpFlow is a relayed TCP flow's own state in one allocation: its relay
// (with the half-closed limit), its entry in the live flows and what its
// end releases. Each was a heap object of its own, with the allocator's
// slack on each, for as long as the flow is open.
type tcpFlow struct {
	relayRun
	live    liveFlow
	f       *Forwarder
	fl      *route.Flow
	t       *admission.Ticket
	tf      *flows.Flow
	release func() // the flow's hold in the Forwarder's group
}

// end takes the result of the flow's relay, takes the flow out of the
// live flows, releases its ticket and its hold, and finishes its entry in
// the flow table.
func (c *tcpFlow) end(err error) {
	c.f.endTCP(err, c.fl, c.t, c.tf, &c.live)
	c.release()
}

// closeBoth is the flow table's way to end the flow.
func (c *tcpFlow) closeBoth() {
	resetOrClose(c.live.app)
	resetOrClose(c.live.host)
}

// endTCP takes the result of fl's relay, takes the flow out of the live
// flows (lf), releases its ticket and finishes its entry tf in the flow
// table.
func (f *Forwarder) endTCP(err error, fl *route.Flow, t *admission.Ticket, tf *flows.Flow, lf *liveFlow) {
	f.live.remove(lf)
	t.Release()
	tf.Finish(flows.EndClosed)
	f.relayEnded(err)
	if err != nil && f.ctx.Err() == nil { // not one of Close's resets
		f.log.Debug("tcp relay ended", "src", fl.Src, "dst", fl.Dst, "err", err)
	}
}

// resetOrClose ends c with a reset where it can.
func resetOrClose(c interface{ Close() error }) {
	if r, ok := c.(Resetter); ok {
		r.Reset()
		return
	}
	c.Close()
}
