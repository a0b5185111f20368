package main

import (
	"context"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
)

// iperfUDPJSON is the shape of iperf3 3.12's -J output for a UDP run,
// trimmed to the fields around the ones read.
const iperfUDPJSON = `{"start": {}, "intervals": [], "end": {
  "streams": [{"udp": {"bytes": 108906000, "lost_percent": 52.3, "sender": true}}],
  "sum": {"bytes": 217812000, "bits_per_second": 1742313057.1, "lost_packets": 81374, "packets": 155580, "lost_percent": 52.3, "sender": true},
  "sum_sent": {"bytes": 217812000, "bits_per_second": 1742313057.1, "lost_packets": 0, "packets": 155580, "lost_percent": 0, "sender": true},
  "sum_received": {"bytes": 103888400, "bits_per_second": 830823889.0, "lost_packets": 81374, "packets": 155580, "lost_percent": 52.3, "sender": false}}}`

func TestParseIperf(t *testing.T) {
	r, err := parseIperf([]byte(iperfUDPJSON), nil, "")
	if err != nil {
		t.Fatal(err)
	}
	want := iperfResult{bitsPerSecond: 830823889.0, bytes: 103888400, sentPerSecond: 1742313057.1, lostPercent: 52.3}
	if r != want {
		t.Errorf("parseIperf(udp) = %+v, want the receiver's rate and loss %+v", r, want)
	}
	tcp := `{"end": {"sum_sent": {"bytes": 5e9, "bits_per_second": 2e10}, "sum_received": {"bytes": 5e9, "bits_per_second": 2e10}}}`
	if r, err := parseIperf([]byte(tcp), nil, ""); err != nil || r.bitsPerSecond != 2e10 || r.lostPercent != 0 {
		t.Errorf("parseIperf(tcp) = %+v, %v", r, err)
	}
	lostAll := `{"end": {"sum_sent": {"bytes": 1e9, "bits_per_second": 8e9}, "sum_received": {"bytes": 0, "bits_per_second": 0, "lost_percent": 100}}}`
	if r, err := parseIperf([]byte(lostAll), nil, ""); err != nil || r.lostPercent != 100 {
		t.Errorf("parseIperf(everything lost) = %+v, %v; want a result, not an error", r, err)
	}
	for name, tc := range map[string]struct {
		out    string
		runErr error
	}{
		"server busy":  {`{"error": "the server is busy running a test. try again later"}`, errors.New("exit status 1")},
		"not json":     {"iperf3: error", errors.New("exit status 1")},
		"nothing sent": {`{"end": {}}`, nil},
	} {
		if _, err := parseIperf([]byte(tc.out), tc.runErr, "stderr text"); err == nil {
			t.Errorf("%s: parseIperf succeeded, want an error", name)
		}
	}
}

// fakePath is a UDP path that carries up to capacity bits/s without loss
// and, past it, delivers collapsed: a fraction of the capacity.
type fakePath struct {
	capacity, collapsed float64
	tried               []float64
}

func (p *fakePath) try(_ context.Context, rate float64) (udpTrial, error) {
	p.tried = append(p.tried, rate)
	if rate <= p.capacity {
		return udpTrial{sent: rate, received: rate}, nil
	}
	got := p.collapsed * p.capacity
	return udpTrial{sent: rate, received: got, lost: 100 * (1 - got/rate)}, nil
}

func TestSearchCapacity(t *testing.T) {
	for _, tc := range []struct {
		name                string
		capacity, collapsed float64 // the fake path
		unlimited           udpTrial
		steps               int
		minRatio            float64 // found / capacity at least
	}{
		// Past capacity, the arrival rate stays near it: the first guess
		// (95% of it) is carried and bisection closes in.
		{"saturates", 2e9, 0.9, udpTrial{sent: 14e9, received: 1.8e9, lost: 87}, 6, 0.9},
		// Past capacity, a twentieth arrives: far below, found by bisection.
		{"collapses", 2e9, 0.05, udpTrial{sent: 14e9, received: 0.1e9, lost: 99}, 6, 0.85},
		// Nothing arrives under overload: quarter down from the sending rate.
		{"loses all", 2e9, 0, udpTrial{sent: 14e9, received: 0, lost: 100}, 6, 0.7},
	} {
		p := &fakePath{capacity: tc.capacity, collapsed: tc.collapsed}
		got, err := searchCapacity(context.Background(), tc.unlimited, tc.steps, p.try)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got > tc.capacity || got < tc.minRatio*tc.capacity {
			t.Errorf("%s: capacity %.3g, want in [%.3g, %.3g] (tried %.3g)", tc.name, got, tc.minRatio*tc.capacity, tc.capacity, p.tried)
		}
		if len(p.tried) > tc.steps {
			t.Errorf("%s: %d trials, want at most %d", tc.name, len(p.tried), tc.steps)
		}
	}
}

func TestSearchCapacityEdges(t *testing.T) {
	p := &fakePath{capacity: 5e9}
	// The unlimited run lost nothing: the sender is the limit, no trial.
	got, err := searchCapacity(context.Background(), udpTrial{sent: 3e9, received: 3e9, lost: 0.2}, 5, p.try)
	if err != nil || got != 3e9 || len(p.tried) != 0 {
		t.Errorf("sender-limited: %v, %v after %d trials; want 3e9 and no trial", got, err, len(p.tried))
	}
	// Nothing is ever carried: the search stops at the floor with 0.
	dead := &fakePath{capacity: 0}
	got, err = searchCapacity(context.Background(), udpTrial{sent: 1e9, received: 0, lost: 100}, 50, dead.try)
	if err != nil || got != 0 || len(dead.tried) > 10 {
		t.Errorf("dead path: %v, %v after %d trials; want 0 soon", got, err, len(dead.tried))
	}
	// A failing trial ends the search with its error.
	boom := errors.New("iperf3 failed")
	_, err = searchCapacity(context.Background(), udpTrial{sent: 1e9, received: 1e8, lost: 90}, 5,
		func(context.Context, float64) (udpTrial, error) { return udpTrial{}, boom })
	if !errors.Is(err, boom) {
		t.Errorf("error = %v, want %v", err, boom)
	}
}

func TestNewRowsDirection(t *testing.T) {
	dir := map[string]bool{}
	for _, m := range metrics() {
		dir[m.ID] = m.HigherIsBetter
	}
	for id, higher := range map[string]bool{
		"cpu_per_kconn": false, "udp_cpu_us_per_rt": false, "udp_goodput_up_p1": true, "udp_capacity_down_p4": true, "udp_overload_up_p4": true,
	} {
		got, ok := dir[id]
		if !ok || got != higher {
			t.Errorf("metric %s: present %v, higher is better %v; want %v", id, ok, got, higher)
		}
	}
	legend := ratioLegend(metrics())
	better, worse, _ := strings.Cut(legend, ";")
	if !strings.Contains(better, "Gbit/s") || !strings.Contains(worse, "s/1k conns") || strings.Contains(better, "s/1k conns") {
		t.Errorf("legend %q: want Gbit/s above 1 better and s/1k conns below 1 better", legend)
	}

	r := &results{Metrics: metrics()}
	r.add("kernel", "udp_capacity_up_p1", 6)
	r.add("tungate", "udp_capacity_up_p1", 1.5)
	r.add("tungate", "cpu_per_kconn", 0.2)
	r.add("pasta", "cpu_per_kconn", 0.1)
	r.add("tungate", "udp_cpu_us_per_rt", 18)
	r.add("pasta", "udp_cpu_us_per_rt", 12)
	r.finish(0)
	if got := r.Ratios["udp_capacity_up_p1"]["tungate"]["kernel"]; got != 0.25 {
		t.Errorf("capacity tg/k = %v, want 0.25", got)
	}
	if got := r.Ratios["cpu_per_kconn"]["tungate"]["pasta"]; math.Abs(got-2) > 1e-9 {
		t.Errorf("cpu per 1k conns tg/pasta = %v, want 2", got)
	}
	if got := r.Ratios["udp_cpu_us_per_rt"]["tungate"]["pasta"]; math.Abs(got-1.5) > 1e-9 {
		t.Errorf("cpu per UDP round trip tg/pasta = %v, want 1.5", got)
	}
}

func TestParseConfigRows(t *testing.T) {
	cfg, err := parseConfig([]string{"-quick", "-rows", "conn,udpbulk"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.row("conn") || !cfg.row("udpbulk") || cfg.row("tcp") || cfg.row("idle") || cfg.udpSteps != 3 {
		t.Errorf("-rows conn,udpbulk -quick = %+v", cfg)
	}
	if all, _ := parseConfig(nil, io.Discard); !all.row("tcp") || all.udpSteps != 6 {
		t.Errorf("default config = %+v, want every row and 6 UDP steps", all)
	}
	for _, bad := range [][]string{{"-rows", "tcp,nope"}, {"-udp-steps", "-1"}} {
		if _, err := parseConfig(bad, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("parseConfig(%q) = %v, want a usage error", bad, err)
		}
	}
}
