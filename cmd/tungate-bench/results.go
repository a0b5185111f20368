package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// metric is one row of the report.
type metric struct {
	ID    string `json:"id"`
	Label string `json:"label"`
	Unit  string `json:"unit"`
	// HigherIsBetter tells how to read the ratios.
	HigherIsBetter bool `json:"higher_is_better"`
}

// metrics lists every row in report order.
func metrics() []metric {
	var m []metric
	for _, sc := range []string{"1500", "best"} {
		mtu := "MTU 1500"
		if sc == "best" {
			mtu = "best MTU"
			m = append(m, metric{"best_mtu", "best MTU", "bytes", true})
		}
		for _, f := range flows() {
			m = append(m, metric{"tcp_" + f.id() + "_" + sc, fmt.Sprintf("TCP %s x%d, %s", f.dir, f.streams, mtu), "Gbit/s", true})
		}
		for _, f := range flows() {
			m = append(m, metric{"cpu_" + f.id() + "_" + sc, fmt.Sprintf("CPU/GB %s x%d, %s", f.dir, f.streams, mtu), "s/GB", false})
		}
		m = append(m, metric{"peak_rss_" + sc, "peak RSS, " + mtu, "MiB", false})
	}
	m = append(m,
		metric{"conn_rate", "TCP connections (50 clients)", "conn/s", true},
		metric{"cpu_per_kconn", "CPU per 1,000 TCP connections", "s/1k conns", false},
		metric{"sys_per_kconn", "  of which in the kernel", "s/1k conns", false},
		metric{"udp_rate", "UDP 60 B round trips (8 clients)", "rt/s", true},
		metric{"udp_median_us", "UDP round trip median", "µs", false},
		metric{"udp_cpu_us_per_rt", "CPU per UDP round trip", "µs/rt", false},
		metric{"udp_sys_us_per_rt", "  of which in the kernel", "µs/rt", false},
	)
	m = append(m, udpBulkMetrics()...)
	return append(m,
		metric{"idle_open", fmt.Sprintf("idle conns opened within %v", idleOpenTime), "conns", true},
		metric{"idle_rss", "RSS holding idle conns", "MiB", false},
		metric{"idle_bytes_per_conn", "RSS per idle conn", "bytes", false},
	)
}

// udpBulkMetrics are the UDP bulk rows (1,400-byte datagrams, MTU 1500):
// for each kind, up and down with 1 and 4 streams.
func udpBulkMetrics() []metric {
	kinds := []struct{ prefix, label, unit string }{
		{"udp_goodput_", "-b 0: arrives", "Gbit/s"},
		{"udp_capacity_", "capacity (<1% lost)", "Gbit/s"},
		{"udp_overload_", "-b 0 / capacity", "ratio"},
	}
	var m []metric
	for _, k := range kinds {
		for _, f := range flows() {
			m = append(m, metric{k.prefix + f.id(), fmt.Sprintf("UDP %s x%d, %s", f.dir, f.streams, k.label), k.unit, true})
		}
	}
	return m
}

// value is one metric of one path: every run and their median.
type value struct {
	Median float64   `json:"median"`
	Runs   []float64 `json:"runs"`
}

// pathResult is everything measured on one path.
type pathResult struct {
	Name    string            `json:"name"`
	Skipped string            `json:"skipped,omitempty"`
	Errors  []string          `json:"errors,omitempty"`
	Values  map[string]*value `json:"values"`
}

// results is the whole run, as saved in JSON.
type results struct {
	Commit    string    `json:"commit"`
	Started   time.Time `json:"started"`
	Seconds   float64   `json:"seconds"`
	Runs      int       `json:"runs"`
	IperfSecs float64   `json:"iperf_seconds"`
	IdleConns int       `json:"idle_conns"`
	// Congestion is the kernel's default TCP congestion control, which
	// every namespace of the run inherits: with bbr every kernel sender
	// paces, which sets the kernel path's ceiling on a virtual machine.
	Congestion string        `json:"tcp_congestion_control"`
	Metrics    []metric      `json:"metrics"`
	Paths      []*pathResult `json:"paths"`
	// Ratios[metric][a][b] is a's median divided by b's, same run.
	Ratios map[string]map[string]map[string]float64 `json:"ratios"`
}

func newResults(cfg config) *results {
	return &results{
		Commit:     gitCommit(),
		Started:    time.Now().UTC(),
		Runs:       cfg.runs,
		IperfSecs:  cfg.iperfTime.Seconds(),
		IdleConns:  cfg.idleConns,
		Congestion: congestionControl(),
		Metrics:    metrics(),
	}
}

// congestionControl returns the kernel's default TCP congestion control,
// or "unknown".
func congestionControl() string {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func (r *results) path(name string) *pathResult {
	for _, p := range r.Paths {
		if p.Name == name {
			return p
		}
	}
	p := &pathResult{Name: name, Values: map[string]*value{}}
	r.Paths = append(r.Paths, p)
	return p
}

// add records one run of a metric.
func (r *results) add(path, id string, v float64) {
	p := r.path(path)
	if p.Values[id] == nil {
		p.Values[id] = &value{}
	}
	p.Values[id].Runs = append(p.Values[id].Runs, v)
}

func (r *results) fail(path string, err error) {
	p := r.path(path)
	p.Errors = append(p.Errors, err.Error())
}

func (r *results) skip(path, why string) {
	r.path(path).Skipped = why
}

// finish computes medians and ratios.
func (r *results) finish(took time.Duration) {
	r.Seconds = took.Seconds()
	for _, p := range r.Paths {
		for _, v := range p.Values {
			v.Median = median(v.Runs)
		}
	}
	r.Ratios = map[string]map[string]map[string]float64{}
	for _, m := range r.Metrics {
		if m.ID == "best_mtu" {
			continue // a setting, not a result
		}
		for _, a := range r.Paths {
			for _, b := range r.Paths {
				va, vb := a.Values[m.ID], b.Values[m.ID]
				if a == b || va == nil || vb == nil || vb.Median == 0 {
					continue
				}
				if r.Ratios[m.ID] == nil {
					r.Ratios[m.ID] = map[string]map[string]float64{}
				}
				if r.Ratios[m.ID][a.Name] == nil {
					r.Ratios[m.ID][a.Name] = map[string]float64{}
				}
				r.Ratios[m.ID][a.Name][b.Name] = va.Median / vb.Median
			}
		}
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
