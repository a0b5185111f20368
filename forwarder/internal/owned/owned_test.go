package owned

import (
	"sync/atomic"
	"testing"
	"time"
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

func TestHoldIsJoinedAndRefusedAfterClose(t *testing.T) {
	var g Group
	release, ok := g.Hold()
	if !ok {
		t.Fatal("Hold refused before Close")
	}
	g.Close()
	if _, ok := g.Hold(); ok {
		t.Fatal("Hold counted after Close")
	}
	waited := make(chan struct{})
	go func() { g.Wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("Wait returned while a Hold was not released")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	<-waited
}
