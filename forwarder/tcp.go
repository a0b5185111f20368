package forwarder

import (
	"context"

	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/forwarder/route"
	"github.com/tungate/tungate/stack/flow"
)

// HandleTCP implements stack.Handler. It decides the flow's fate and dials
// the destination before the app's handshake completes, so that a refused
// or unreachable destination reaches the app as a reset rather than as a
// connection that dies later.
func (f *Forwarder) HandleTCP(r flow.TCPRequest) {
	fl, d, t, ok := f.admit(route.TCP, r)
	if !ok {
		return
	}
	if !f.goFlow(func(ctx context.Context) { f.forwardTCP(ctx, r, fl, d, t) }) {
		t.Finish(flows.EndClosed)
		r.Refuse()
	}
}

func (f *Forwarder) forwardTCP(ctx context.Context, r flow.TCPRequest, fl *route.Flow, d route.Decision, t *flows.Flow) {
	growStack() // the dial and the handshake go deep at once (stackgrow.go)
	host, err := f.open(ctx, fl, d, t)
	if err != nil {
		f.log.Debug("tcp dial failed", "src", fl.Src, "dst", fl.Dst, "err", err)
		r.Refuse()
		return
	}
	app, err := r.Accept()
	if err != nil {
		host.Close()
		t.Finish(flows.EndResetByApp) // the app gave up while we dialed
		f.log.Debug("tcp accept failed", "src", fl.Src, "dst", fl.Dst, "err", err)
		return
	}
	t.SetCloser(func() { resetOrClose(app); resetOrClose(host) })
	f.log.Debug("tcp open", "src", fl.Src, "dst", fl.Dst)
	// The relay gets a fresh goroutine rather than this one, whose stack
	// grew deep while dialing: an idle flow parks that goroutine for as
	// long as it lives, and a small stack is most of what it costs.
	run := func(ctx context.Context) {
		defer t.Finish(flows.EndClosed)
		if err := relay(ctx, app, host, t); err != nil {
			f.log.Debug("tcp relay ended", "src", fl.Src, "dst", fl.Dst, "err", err)
		}
	}
	if !f.goFlow(run) {
		t.Finish(flows.EndClosed)
		resetOrClose(app)
		host.Close()
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
