package forwarder

import (
	"context"
	"sync/atomic"
)

// New TCP flows are set up (dial, the app's handshake, the relay's start)
// on goroutines that are kept for the next flow instead of exiting. Each
// setup goes deep (package net's dial, gVisor's handshake) and grows a
// fresh goroutine's stack to 16 KiB by a copy (stackgrow.go); a kept
// goroutine has the stack already, and the runtime creates and destroys
// no goroutine per flow. At a high connection rate that was about a tenth
// of tungate's CPU time (goroutine creation, exit and stack copies). A
// kept goroutine parks shallow, so the collector shrinks its stack while
// no flow comes; the next setup's growStack grows it again.

// maxIdleSetupWorkers bounds the goroutines kept idle for setups: enough
// for the setups in flight at once at a high connection rate, few enough
// that their stacks (16 KiB each until the collector shrinks them) do not
// matter. It is not a limit on setups: past it a setup runs on a new
// goroutine that exits when done.
const maxIdleSetupWorkers = 32

// setupWorkers hands setups to idle kept goroutines. Its zero value is
// ready to use.
type setupWorkers struct {
	jobs chan func(context.Context) // unbuffered: a send succeeds only to a waiting worker
	idle atomic.Int32               // workers waiting on jobs, or about to
}

func (w *setupWorkers) init() { w.jobs = make(chan func(context.Context)) }

// goSetup runs fn as a flow goroutine that Close waits for, on an idle
// kept goroutine if there is one. Like goFlow it returns false (and does
// not run fn) once Close has begun.
func (f *Forwarder) goSetup(fn func(ctx context.Context)) bool {
	if f.flows.Closed() {
		return false
	}
	select {
	case f.setup.jobs <- fn:
		return true
	default:
	}
	return f.goFlow(func(ctx context.Context) { f.setupWorker(ctx, fn) })
}

// setupWorker runs fn, then waits for the next setup while fewer than
// maxIdleSetupWorkers others wait, until the forwarder stops.
func (f *Forwarder) setupWorker(ctx context.Context, fn func(context.Context)) {
	w := &f.setup
	for {
		fn(ctx)
		if w.idle.Add(1) > maxIdleSetupWorkers {
			w.idle.Add(-1)
			return
		}
		select {
		case fn = <-w.jobs:
			w.idle.Add(-1)
		case <-ctx.Done():
			w.idle.Add(-1)
			return
		}
	}
}
