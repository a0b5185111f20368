package udpnat

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"unsafe"

	"github.com/tungate/tungate/forwarder/proxy"
)

// fillBatch lays datagrams of the given sizes from the given sources into
// b as a recv would.
func fillBatch(b *recvBatch, srcs []netip.AddrPort, sizes []int) {
	for i, n := range sizes {
		copy(b.bufs[i], bytes.Repeat([]byte{byte(i)}, n))
		b.hdrs[i].Len = uint32(n)
		(*rawSockaddr)(unsafe.Pointer(&b.names[i])).set(srcs[i])
	}
}

func TestRecvBatchRuns(t *testing.T) {
	a, c := ap("192.0.2.1:443"), ap("192.0.2.2:443")
	for _, tc := range []struct {
		name  string
		srcs  []netip.AddrPort
		sizes []int
		runs  []int
	}{
		{"one size, shorter last", []netip.AddrPort{a, a, a, a, a}, []int{1200, 1200, 1200, 80, 1200}, []int{4, 1}},
		{"two sources", []netip.AddrPort{a, a, c, c, a}, []int{100, 100, 100, 100, 100}, []int{2, 2, 1}},
		{"a longer one ends a run", []netip.AddrPort{a, a, a}, []int{100, 100, 200}, []int{2, 1}},
		{"past the segment size", []netip.AddrPort{a, a, a}, []int{1500, 1500, 1500}, []int{1, 1, 1}},
		{"empty datagrams alone", []netip.AddrPort{a, a, a}, []int{0, 0, 10}, []int{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newRecvBatch()
			fillBatch(b, tc.srcs, tc.sizes)
			var runs []int
			for i := 0; i < len(tc.sizes); {
				k := b.run(i, len(tc.sizes))
				for j := i; j < i+k; j++ {
					if !bytes.Equal(b.runs[j], b.datagram(j)) {
						t.Fatalf("runs[%d] is not datagram %d", j, j)
					}
				}
				runs = append(runs, k)
				i += k
			}
			if !slices.Equal(runs, tc.runs) {
				t.Errorf("runs %v, want %v", runs, tc.runs)
			}
		})
	}
}

// segmentApp is a fakeApp that also takes runs of datagrams, recording
// their lengths.
type segmentApp struct {
	*fakeApp
	runs []int
}

func (a *segmentApp) SendSegments(src, dst netip.AddrPort, segs [][]byte) error {
	a.runs = append(a.runs, len(segs))
	for _, p := range segs {
		a.SendTo(src, dst, p)
	}
	return nil
}

func TestDeliverSegmentsWritesOneRun(t *testing.T) {
	for _, filter := range []Filter{FilterEndpoint, FilterPort} {
		t.Run(filter.String(), func(t *testing.T) {
			app := &segmentApp{fakeApp: newFakeApp()}
			meter := &countMeter{}
			direct := &proxy.Direct{}
			tab, err := New(Options{Filter: filter, App: app,
				Route: func(_, _ netip.AddrPort) Destination { return Destination{Upstream: direct, Meter: meter} }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tab.Close() })
			_, dst := gatherSink(t)
			if err := tab.Send(app1, dst, []byte("open")); err != nil {
				t.Fatal(err)
			}
			waitOpen(t, tab, 1)
			tab.mu.Lock()
			m := tab.sessions[app1].dests[dst].m
			tab.mu.Unlock()
			segs := [][]byte{[]byte("one."), []byte("two."), []byte("3")}
			tab.deliverSegments(m, dst, segs)
			for _, p := range segs {
				app.expect(t, delivery{dst, app1, string(p)})
			}
			stranger := ap("192.0.2.99:53")
			tab.deliverSegments(m, stranger, segs)
			wantRuns, wantFiltered := []int{3, 3}, uint64(0)
			if filter == FilterPort {
				wantRuns, wantFiltered = []int{3}, 3
			} else {
				for _, p := range segs {
					app.expect(t, delivery{stranger, app1, string(p)})
				}
			}
			if !slices.Equal(app.runs, wantRuns) || tab.Stats().Filtered != wantFiltered || meter.received.Load() != 3 {
				t.Errorf("runs %v, %d filtered, %d received by the meter; want %v, %d, 3",
					app.runs, tab.Stats().Filtered, meter.received.Load(), wantRuns, wantFiltered)
			}
		})
	}
}
