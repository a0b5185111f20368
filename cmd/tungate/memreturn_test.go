package main

import "testing"

func TestFlowTrend(t *testing.T) {
	var tr flowTrend
	steps := []struct {
		flows int
		want  bool
	}{
		{100, false}, {50, false}, // no flood: never
		{9000, false}, {6000, false}, {4500, true}, // half the peak
		{4000, false}, {2000, true}, {0, true}, {0, false},
	}
	for i, s := range steps {
		if got := tr.fell(s.flows); got != s.want {
			t.Fatalf("step %d (%d flows): %v, want %v", i, s.flows, got, s.want)
		}
	}
}
