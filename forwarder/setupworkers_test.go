package forwarder

import (
	"context"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

func newSetupForwarder(t *testing.T) *Forwarder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &Forwarder{ctx: ctx, cancel: cancel}
	f.setup.init()
	t.Cleanup(func() {
		f.flows.Close()
		cancel()
		f.flows.Wait()
	})
	return f
}

func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// runSetup runs one job through goSetup and waits for it.
func runSetup(t *testing.T, f *Forwarder) {
	t.Helper()
	done := make(chan struct{})
	if !f.goSetup(func(context.Context) { close(done) }) {
		t.Fatal("goSetup refused before Close")
	}
	<-done
}

// waitIdle waits until at least n workers wait for a job.
func waitIdle(t *testing.T, f *Forwarder, n int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.setup.idle.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d setup workers idle, want at least %d", f.setup.idle.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSetupWorkersAreKept(t *testing.T) {
	f := newSetupForwarder(t)
	runSetup(t, f)
	waitIdle(t, f, 1)
	before := goroutinesCreated()
	for range 100 {
		runSetup(t, f)
		waitIdle(t, f, 1)
	}
	// A setup can come in the instant between the worker counting itself
	// idle and waiting, and start a goroutine: a few of those are fine.
	if n := goroutinesCreated() - before; n > 10 {
		t.Errorf("100 setups in a row started %d goroutines, want about 0 (the kept one runs them)", n)
	}
}

func TestSetupWorkersKeepAtMostMaxIdle(t *testing.T) {
	f := newSetupForwarder(t)
	const n = maxIdleSetupWorkers + 10
	var started, release sync.WaitGroup
	started.Add(n)
	release.Add(1)
	for range n {
		if !f.goSetup(func(context.Context) { started.Done(); release.Wait() }) {
			t.Fatal("goSetup refused before Close")
		}
	}
	started.Wait() // all n run at once: none was handed to a busy worker
	release.Done()
	waitIdle(t, f, maxIdleSetupWorkers)
	time.Sleep(10 * time.Millisecond) // the other 10 exit rather than wait
	if n := f.setup.idle.Load(); n != maxIdleSetupWorkers {
		t.Errorf("%d setup workers idle, want at most %d", n, maxIdleSetupWorkers)
	}
}

func TestSetupWorkersStopWithTheForwarder(t *testing.T) {
	f := newSetupForwarder(t)
	runSetup(t, f)
	waitIdle(t, f, 1)
	f.flows.Close()
	if f.goSetup(func(context.Context) { t.Error("setup ran after Close") }) {
		t.Error("goSetup accepted a setup after Close")
	}
	f.cancel()
	waited := make(chan struct{})
	go func() { f.flows.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("the idle setup worker did not exit when the forwarder stopped")
	}
	if n := f.setup.idle.Load(); n != 0 {
		t.Errorf("%d setup workers still counted idle after stop, want 0", n)
	}
}
