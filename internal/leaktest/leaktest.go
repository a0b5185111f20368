// Package leaktest is the goroutine-leak check that tests share: take a
// snapshot of the goroutine count before starting what is tested, stop it,
// then wait for the count to come back.
package leaktest

import (
	"runtime"
	"testing"
	"time"
)

// Timeout is how long Wait gives goroutines to finish exiting after the
// code under test was told to stop.
const Timeout = 5 * time.Second

// Snapshot is the number of goroutines at one moment of a test.
type Snapshot struct{ n int }

// Take records the number of goroutines now.
func Take() Snapshot { return Snapshot{runtime.NumGoroutine()} }

// Wait waits up to Timeout for the number of goroutines to fall to at most
// the snapshot's plus slack (the goroutines of the test's own servers, say)
// and otherwise fails t with the stacks of all goroutines.
func (s Snapshot) Wait(t testing.TB, slack int) {
	t.Helper()
	want := s.n + slack
	deadline := time.Now().Add(Timeout)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after %v, want at most %d:\n%s", runtime.NumGoroutine(), Timeout, want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
