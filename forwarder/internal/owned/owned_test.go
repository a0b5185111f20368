package owned

import (
	"sync/atomic"
	"testing"
)

func TestGroupRefusesAfterCloseAndJoins(t *testing.T) {
	var g Group
	var ran atomic.Int32
	release := make(chan struct{})
	if !g.Go(func() { <-release; ran.Add(1) }) {
		t.Fatal("Go refused before Close")
	}
	g.Close()
	if g.Go(func() { ran.Add(1) }) {
		t.Fatal("Go ran after Close")
	}
	close(release)
	g.Wait()
	if ran.Load() != 1 {
		t.Fatalf("ran %d goroutines, want 1", ran.Load())
	}
}
