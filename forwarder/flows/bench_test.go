package flows

import (
	"testing"
	"time"
)

// BenchmarkFlowLife is what the table costs each flow: Begin, the dial's
// result, a few counted chunks, and Finish, with and without a sink (the
// flow log's Add, here a function that keeps nothing).
func BenchmarkFlowLife(b *testing.B) {
	for _, sink := range []bool{false, true} {
		b.Run(map[bool]string{false: "no-sink", true: "sink"}[sink], func(b *testing.B) {
			opts := Options{}
			if sink {
				opts.Sink = func(Record) {}
			}
			t := New(opts)
			defer t.Close()
			s := Start{Protocol: TCP, Src: testSrc, Dst: testDst, Route: "direct", Chain: "direct"}
			b.ReportAllocs()
			for range b.N {
				f := t.Begin(s)
				f.Dialed(time.Millisecond, nil)
				f.Up().Add(100)
				f.Down().Add(1000)
				f.Finish(EndClosed)
			}
		})
	}
}

// BenchmarkFlowLifeParallel is BenchmarkFlowLife from every CPU at once:
// the table's lock is shared by all flows.
func BenchmarkFlowLifeParallel(b *testing.B) {
	t := New(Options{})
	defer t.Close()
	s := Start{Protocol: UDP, Src: testSrc, Dst: testDst, Route: "direct", Chain: "direct"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			f := t.Begin(s)
			f.Dialed(time.Millisecond, nil)
			f.Up().AddDatagram(100)
			f.Finish(EndIdle)
		}
	})
}

// BenchmarkHalfAdd is the data path's whole cost of counting: one add per
// chunk or datagram.
func BenchmarkHalfAdd(b *testing.B) {
	t := New(Options{})
	defer t.Close()
	h := t.Begin(Start{Protocol: UDP}).Up()
	b.ReportAllocs()
	for range b.N {
		h.AddDatagram(1200)
	}
}
