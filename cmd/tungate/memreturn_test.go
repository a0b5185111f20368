package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

func TestFlowTrend(t *testing.T) {
	var tr flowTrend
	steps := []struct {
		flows int
		want  bool
	}{
		{100, false}, {50, false}, {0, false}, // no flood: never
		{5000, false}, {9000, false}, // rising
		{9000, true},                 // settled
		{9000, false}, {9100, false}, // no new flood
		{6000, false}, {4500, true}, // half the peak
		{4000, false}, {2000, true}, {0, true}, {0, false},
		{300, false}, {300, true}, // a small flood settled
		{200, false}, {100, true}, // and gone
		{50, false}, {0, false}, // too few to matter
	}
	for i, s := range steps {
		if got := tr.due(s.flows); got != s.want {
			t.Fatalf("step %d (%d flows): %v, want %v", i, s.flows, got, s.want)
		}
	}
}

func TestGCPace(t *testing.T) {
	prev := debug.SetGCPercent(80)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	percent := func() int { p := debug.SetGCPercent(0); debug.SetGCPercent(p); return p }

	t.Setenv("GOGC", "")
	g := newGCPace(log)
	g.flood(true)
	g.flood(true) // no change: the percent to restore stays 80
	if got := percent(); got != floodGCPercent {
		t.Errorf("rising flood: GC percent %d, want %d", got, floodGCPercent)
	}
	g.flood(false)
	if got := percent(); got != 80 {
		t.Errorf("after the flood: GC percent %d, want 80 back", got)
	}
	for i, s := range []struct{ flows, want int }{
		{100, 80}, {300, floodGCPercent}, {5000, floodGCPercent}, {5100, 80}, {5200, 80}, {9000, floodGCPercent}, {100, 80},
	} {
		g.check(s.flows)
		if got := percent(); got != s.want {
			t.Fatalf("check %d (%d flows): GC percent %d, want %d", i, s.flows, got, s.want)
		}
	}

	t.Setenv("GOGC", "80")
	g = newGCPace(log)
	g.flood(true)
	if got := percent(); got != 80 {
		t.Errorf("rising flood with GOGC=80 set: GC percent %d, want 80 kept", got)
	}
}
