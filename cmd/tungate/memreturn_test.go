package main

import "testing"

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
