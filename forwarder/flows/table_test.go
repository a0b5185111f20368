package flows

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/stack/flow"
)

var (
	testSrc = netip.MustParseAddrPort("198.18.0.1:40000")
	testDst = netip.MustParseAddrPort("10.0.0.2:80")
)

// collect returns a table whose sink keeps every record.
func collect(t *testing.T) (*Table, *[]Record) {
	var recs []Record
	tb := New(Options{Sink: func(r Record) { recs = append(recs, r) }, RateInterval: 10 * time.Millisecond})
	t.Cleanup(tb.Close)
	return tb, &recs
}

func TestFlowLifeCounts(t *testing.T) {
	tb, recs := collect(t)
	f := tb.Begin(Start{Protocol: TCP, Src: testSrc, Dst: testDst, Name: "example.com", Route: "direct", Chain: "direct"})
	if got := tb.Snapshot(); len(got) != 1 || got[0].State != "dialing" || got[0].Name != "example.com" {
		t.Fatalf("snapshot while dialing = %+v", got)
	}
	f.Dialed(3*time.Millisecond, nil)
	f.Up().Add(100)
	f.Down().Add(1000)
	f.Down().Add(24)
	tt := tb.Totals()
	if tt.Open[TCP] != 1 || tt.Bytes[TCP][0] != 100 || tt.Bytes[TCP][1] != 1024 || tt.Opened[TCP][Relayed] != 1 {
		t.Errorf("totals with the flow live = %+v", tt)
	}
	if h := tt.DialLatency["direct"]; h.Count != 1 || h.Buckets[len(h.Buckets)-1] != 1 || h.Buckets[0] != 0 {
		t.Errorf("dial latency = %+v", h)
	}
	f.Finish(EndClosed)
	f.Finish(EndIdle) // only the first counts
	tt = tb.Totals()
	if tt.Open[TCP] != 0 || tt.Bytes[TCP][1] != 1024 || len(tb.Snapshot()) != 0 {
		t.Errorf("totals after the end = %+v", tt)
	}
	if len(*recs) != 1 {
		t.Fatalf("%d records, want 1", len(*recs))
	}
	r := (*recs)[0]
	if r.BytesUp != 100 || r.BytesDown != 1024 || r.End != "closed" || r.PacketsUp != nil || r.Route != "direct" {
		t.Errorf("record = %+v", r)
	}
}

func TestUDPRecordCountsDatagrams(t *testing.T) {
	tb, recs := collect(t)
	f := tb.Begin(Start{Protocol: UDP, Src: testSrc, Dst: testDst})
	f.Dialed(0, nil)
	f.Up().AddDatagram(10)
	f.Up().AddDatagram(20)
	f.Down().AddDatagram(5)
	f.Finish(EndIdle)
	r := (*recs)[0]
	if r.BytesUp != 30 || *r.PacketsUp != 2 || *r.PacketsDown != 1 || r.End != "idle" {
		t.Errorf("record = %+v", r)
	}
	if tt := tb.Totals(); tt.Packets[UDP][0] != 2 || tt.Packets[UDP][1] != 1 {
		t.Errorf("packets = %v", tt.Packets)
	}
}

func TestResetNamesTheSide(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(f *Flow)
		want string
	}{
		{"app read", func(f *Flow) { f.Up().ReadFailed() }, "reset_by_app"},
		{"upstream write", func(f *Flow) { f.Up().WriteFailed() }, "reset_by_upstream"},
		{"upstream read", func(f *Flow) { f.Down().ReadFailed() }, "reset_by_upstream"},
		{"app write", func(f *Flow) { f.Down().WriteFailed() }, "reset_by_app"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, recs := collect(t)
			f := tb.Begin(Start{Protocol: TCP, Src: testSrc, Dst: testDst})
			f.Dialed(0, nil)
			tc.fail(f)
			f.Up().ReadFailed() // the sibling direction fails next; the first reason stays
			f.Finish(EndClosed)
			if got := (*recs)[0].End; got != tc.want {
				t.Errorf("end = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestFailedDialFinishes(t *testing.T) {
	tb, recs := collect(t)
	f := tb.Begin(Start{Protocol: TCP, Src: testSrc, Dst: testDst, Route: "direct", Chain: "direct"})
	f.Dialed(time.Millisecond, fmt.Errorf("dial: %w", syscall.ECONNREFUSED))
	f.Finish(EndClosed) // the caller's own Finish changes nothing
	if len(*recs) != 1 || (*recs)[0].End != "dial_refused" {
		t.Fatalf("records = %+v", *recs)
	}
	if tt := tb.Totals(); tt.Opened[TCP][Refused] != 1 || tt.Open[TCP] != 0 {
		t.Errorf("totals = %+v", tt)
	}
	tb.Blocked(Start{Protocol: UDP, Src: testSrc, Dst: testDst})
	if (*recs)[1].End != "blocked" || tb.Totals().Opened[UDP][Blocked] != 1 {
		t.Errorf("blocked: %+v", (*recs)[1])
	}
}

func TestKill(t *testing.T) {
	tb, recs := collect(t)
	f := tb.Begin(Start{Protocol: TCP, Src: testSrc, Dst: testDst})
	if err := tb.Kill(f.ID + 1); !errors.Is(err, ErrNoFlow) {
		t.Errorf("Kill(unknown) = %v, want ErrNoFlow", err)
	}
	closed := make(chan struct{})
	f.Dialed(0, nil)
	f.SetCloser(func() { close(closed); f.Down().ReadFailed(); f.Finish(EndClosed) })
	if err := tb.Kill(f.ID); err != nil {
		t.Fatal(err)
	}
	<-closed
	if (*recs)[0].End != "killed" {
		t.Errorf("end = %s, want killed", (*recs)[0].End)
	}
}

func TestRate(t *testing.T) {
	tb, _ := collect(t)
	f := tb.Begin(Start{Protocol: TCP, Src: testSrc, Dst: testDst})
	f.Dialed(0, nil)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		f.Down().Add(1000)
		time.Sleep(2 * time.Millisecond)
		if s := tb.Snapshot(); s[0].RateDown > 0 && s[0].RateUp == 0 {
			return
		}
	}
	t.Errorf("no download rate measured: %+v", tb.Snapshot())
}

func TestClassify(t *testing.T) {
	hop := func(i int, err error) error { return &proxy.HopError{Index: i, Hop: "socks5://p:1080", Err: err} }
	for _, tc := range []struct {
		err  error
		want Outcome
		hop  int
	}{
		{nil, Relayed, 0},
		{syscall.ECONNREFUSED, Refused, 0},
		{hop(2, proxy.ErrRefused), Refused, 0},
		{os.ErrDeadlineExceeded, TimedOut, 0},
		{hop(1, proxy.ErrHandshakeTimeout), TimedOut, 0},
		{hop(2, proxy.ErrAuth), ProxyFailed, 2},
		{hop(20, proxy.ErrProtocol), ProxyFailed, MaxHop},
		{hop(1, proxy.ErrUnreachable), Failed, 0},
		{syscall.EHOSTUNREACH, Failed, 0},
		{fmt.Errorf("connect: %w", flow.ErrConnectionRefused), Refused, 0},
		{fmt.Errorf("connect: %w", proxy.ErrAddressRefused), Blocked, 0},
	} {
		o, h := Classify(tc.err)
		if o != tc.want || h != tc.hop {
			t.Errorf("Classify(%v) = %s, %d; want %s, %d", tc.err, o, h, tc.want, tc.hop)
		}
	}
}

// TestCountingDoesNotAllocate checks the data path's share: counting a
// chunk or a datagram allocates nothing.
func TestCountingDoesNotAllocate(t *testing.T) {
	tb, _ := collect(t)
	f := tb.Begin(Start{Protocol: UDP, Src: testSrc, Dst: testDst})
	up, down := f.Up(), f.Down()
	if n := testing.AllocsPerRun(1000, func() { up.Add(1500); down.AddDatagram(60) }); n != 0 {
		t.Errorf("%v allocations per count", n)
	}
}

// TestLiveMapShrinksAfterFlood checks that the live map is rebuilt once a
// flood of flows has gone, with the flows still live kept.
func TestLiveMapShrinksAfterFlood(t *testing.T) {
	table := New(Options{})
	t.Cleanup(table.Close)
	var fs []*Flow
	for range 4000 {
		fs = append(fs, table.Begin(Start{Protocol: TCP}))
	}
	for _, f := range fs[:3900] {
		f.Finish(EndClosed)
	}
	table.mu.Lock()
	peak, live := table.livePeak, len(table.live)
	table.mu.Unlock()
	if live != 100 || peak > 1000 {
		t.Fatalf("%d live, peak %d after 3,900 of 4,000 finished; want 100 live and the peak reset", live, peak)
	}
	if got := len(table.Snapshot()); got != 100 {
		t.Fatalf("snapshot of %d flows, want 100", got)
	}
	for _, f := range fs[3900:] {
		if err := table.Kill(f.ID); err != nil {
			t.Fatalf("flow %d lost in the rebuild: %v", f.ID, err)
		}
	}
}
