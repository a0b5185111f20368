package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// observed is a topology whose tungate has every observability flag on.
type observed struct {
	*topo
	sock, flowLog, pcap string
	metrics             string // host:port
	web                 *netlab.Nginx
}

func newObserved(t *testing.T, extra ...string) *observed {
	t.Helper()
	if kernelMode() {
		t.Skip("tungate's own API")
	}
	netlab.RequireBinary(t, "curl")
	dir := t.TempDir()
	o := &observed{sock: filepath.Join(dir, "ctl.sock"), flowLog: filepath.Join(dir, "flows.jsonl"), pcap: filepath.Join(dir, "tun.pcap")}
	o.metrics = "127.0.0.1:" + strconv.Itoa(freePort(t))
	o.topo = newTopo(t, append([]string{"--metrics", o.metrics, "--control", o.sock, "--flow-log", o.flowLog,
		"--pcap", o.pcap, "--udp-timeout", "1s"}, extra...)...)
	o.web = netlab.StartNginx(t, o.srv, 64<<20)
	return o
}

func (o *observed) url() string { return "http://" + o.srvPort(false, netlab.NginxPort) + o.web.Path }

// tungateFlows runs `tungate flows --control SOCK args...` in the test's
// namespace.
func (o *observed) tungateFlows(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := netlab.TungateCommand(t, ctx, append([]string{"flows", "--control", o.sock}, args...)...).CombinedOutput()
	return string(out), err
}

// flowInfo is what the test reads of /flows and of the flow log.
type flowInfo struct {
	ID          uint64  `json:"id"`
	Protocol    string  `json:"protocol"`
	Dst         string  `json:"dst"`
	Name        string  `json:"name"`
	State       string  `json:"state"`
	BytesUp     uint64  `json:"bytes_up"`
	BytesDown   uint64  `json:"bytes_down"`
	PacketsUp   *uint64 `json:"packets_up"`
	PacketsDown *uint64 `json:"packets_down"`
	RateDown    float64 `json:"rate_down"`
	End         string  `json:"end"`
}

// flowTo returns the live flow to dst, polling /flows for up to 10 s until
// ok accepts it.
func (o *observed) flowTo(t *testing.T, dst string, ok func(flowInfo) bool) flowInfo {
	t.Helper()
	var last string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		out, err := o.tungateFlows(t, "--json")
		if err != nil {
			t.Fatalf("tungate flows --json: %v\n%s", err, out)
		}
		var infos []flowInfo
		if err := json.Unmarshal([]byte(out), &infos); err != nil {
			t.Fatalf("tungate flows --json printed %q: %v", out, err)
		}
		for _, f := range infos {
			if f.Dst == dst && ok(f) {
				return f
			}
		}
		last = out
	}
	t.Fatalf("no flow to %s as wanted in /flows: %s", dst, last)
	return flowInfo{}
}

// record returns the flow log's record of the flow to dst that ok
// accepts, polling for up to 10 s.
func (o *observed) record(t *testing.T, dst string, ok func(flowInfo) bool) flowInfo {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		f, err := os.Open(o.flowLog)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r flowInfo
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("flow log line %q: %v", sc.Text(), err)
			}
			if r.Dst == dst && ok(r) {
				f.Close()
				return r
			}
		}
		f.Close()
	}
	log, _ := os.ReadFile(o.flowLog)
	t.Fatalf("no record of the flow to %s as wanted in the flow log:\n%s", dst, log)
	return flowInfo{}
}

// scrape returns the /metrics text.
func (o *observed) scrape(t *testing.T) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + o.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// metric returns the value of the series whose line starts with series
// (name{labels} as the exposition prints them).
func metric(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("no series %s in the scrape", series)
	return 0
}

const tcpDown, tcpUp = `tungate_bytes_total{direction="down",protocol="tcp"}`, `tungate_bytes_total{direction="up",protocol="tcp"}`

// TestObserveCountsAndLogsFlows: a transfer of known size moves the byte
// counters and gets a flow log line with exactly the bytes curl sent and
// received (headers included); a refused dial and a UDP session are
// logged too.
func TestObserveCountsAndLogsFlows(t *testing.T) {
	t.Parallel()
	o := newObserved(t)
	before := o.scrape(t)
	const size = 1_000_000
	out, err := runIn(t, o.app, 30*time.Second, "curl", "-sS", "-o", "/dev/null", "-r", fmt.Sprintf("0-%d", size-1),
		"-w", "%{size_download} %{size_header} %{size_request}", o.url())
	var body, header, request uint64
	if _, serr := fmt.Sscan(out, &body, &header, &request); err != nil || serr != nil || body != size {
		t.Fatalf("curl: %q, %v", out, err)
	}
	dst := o.srvPort(false, netlab.NginxPort)
	rec := o.record(t, dst, func(f flowInfo) bool { return f.Protocol == "tcp" })
	if rec.BytesDown != body+header || rec.BytesUp != request || rec.End != "closed" || rec.PacketsUp != nil {
		t.Errorf("flow log %+v; want %d bytes down, %d up (curl's own counts), end closed", rec, body+header, request)
	}
	after := o.scrape(t)
	if d := metric(t, after, tcpDown) - metric(t, before, tcpDown); d != float64(body+header) {
		t.Errorf("%s moved by %v, want %d", tcpDown, d, body+header)
	}
	if d := metric(t, after, tcpUp) - metric(t, before, tcpUp); d != float64(request) {
		t.Errorf("%s moved by %v, want %d", tcpUp, d, request)
	}
	if n := metric(t, after, `tungate_dial_duration_seconds_count{chain="direct"}`); n < 1 {
		t.Errorf("no dial latency observed")
	}

	// A refused dial: reset at once, logged as such.
	closed := o.srvPort(false, 1)
	if _, err := runIn(t, o.app, 10*time.Second, "curl", "-sS", "http://"+closed+"/"); err == nil {
		t.Fatal("curl to a closed port succeeded")
	}
	o.record(t, closed, func(f flowInfo) bool { return f.End == "dial_refused" })
	if n := metric(t, o.scrape(t), `tungate_flows_opened_total{hop="",outcome="refused",protocol="tcp"}`); n != 1 {
		t.Errorf("refused dials counted %v, want 1", n)
	}

	// A dial that times out (--connect-timeout 2s): nobody holds the
	// address.
	dead := netip.AddrPortFrom(o.deadAddr(false), 80).String()
	runIn(t, o.app, 20*time.Second, "curl", "-sS", "http://"+dead+"/")
	o.record(t, dead, func(f flowInfo) bool { return f.End == "timed_out" })

	// UDP: one 512-byte datagram each way; the session ends idle after
	// --udp-timeout.
	netlab.StartPeer(t, o.srv, "-udp-echo", o.srvPort(false, portUDPEcho1))
	o.peer(t, "udp", "-size", "512", "-addr", o.srvPort(false, portUDPEcho1))
	udp := o.record(t, o.srvPort(false, portUDPEcho1), func(f flowInfo) bool { return f.Protocol == "udp" })
	if udp.BytesUp != 512 || udp.BytesDown != 512 || udp.PacketsUp == nil || *udp.PacketsUp != 1 || *udp.PacketsDown != 1 || udp.End != "idle" {
		t.Errorf("UDP flow log record %+v; want 512 bytes and 1 datagram each way, end idle", udp)
	}
}

// TestObserveLiveFlow: a running (rate-limited) download shows in
// `tungate flows` with a growing byte count, the exposition scraped
// meanwhile passes promtool, --close resets it (curl says so, once it has
// read what its socket had buffered), and the pcap has its SYN and its
// request.
func TestObserveLiveFlow(t *testing.T) {
	t.Parallel()
	netlab.RequireBinary(t, "promtool")
	netlab.RequireBinary(t, "tcpdump")
	o := newObserved(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	curl := o.app.Exec(ctx, "curl", "-sS", "-o", "/dev/null", "--limit-rate", "4M", o.url())
	var curlErr strings.Builder
	curl.Stderr = &curlErr
	if err := curl.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- curl.Wait() }()
	// A second download whose curl is killed: the kernel resets a socket
	// closed with unread data.
	killed := o.app.Exec(ctx, "curl", "-sS", "-o", "/dev/null", "--limit-rate", "1M", "http://"+o.srvPort(true, netlab.NginxPort)+o.web.Path)
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	dst6 := o.srvPort(true, netlab.NginxPort)
	o.flowTo(t, dst6, func(f flowInfo) bool { return f.BytesDown > 0 })
	killed.Process.Kill()
	killed.Wait()
	o.record(t, dst6, func(f flowInfo) bool { return f.End == "reset_by_app" })

	dst := o.srvPort(false, netlab.NginxPort)
	first := o.flowTo(t, dst, func(f flowInfo) bool { return f.State == "open" && f.BytesDown > 0 })
	o.flowTo(t, dst, func(f flowInfo) bool {
		return f.ID == first.ID && f.BytesDown >= first.BytesDown+1<<20 && f.RateDown > 0
	})
	table, err := o.tungateFlows(t)
	if err != nil || !strings.Contains(table, dst) || !strings.Contains(table, "direct") || !strings.Contains(table, "open") {
		t.Errorf("tungate flows: %v\n%s", err, table)
	}
	t.Logf("tungate flows:\n%s", table)

	scrape := filepath.Join(t.TempDir(), "scrape.txt")
	os.WriteFile(scrape, []byte(o.scrape(t)), 0o644)
	check := exec.Command("promtool", "check", "metrics")
	check.Stdin, _ = os.Open(scrape)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	if out, err := o.tungateFlows(t, "--close", strconv.FormatUint(first.ID, 10)); err != nil {
		t.Fatalf("tungate flows --close: %v\n%s", err, out)
	}
	closedAt := time.Now()
	defer func() { t.Logf("curl ended %v after --close", time.Since(closedAt)) }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 56 || !strings.Contains(curlErr.String(), "reset") {
			t.Errorf("curl after --close: %v, %q; want exit 56, connection reset", err, curlErr.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("curl still runs after --close")
	}
	o.record(t, dst, func(f flowInfo) bool { return f.End == "killed" })
	if out, err := o.tungateFlows(t, "--close", strconv.FormatUint(first.ID, 10)); err == nil {
		t.Errorf("--close of a closed flow succeeded: %s", out)
	}

	o.gw.Stop() // the capture is complete
	syn, err := exec.Command("tcpdump", "-r", o.pcap, "-nn", fmt.Sprintf("tcp[tcpflags] == tcp-syn and dst port %d", netlab.NginxPort)).Output()
	if err != nil || !strings.Contains(string(syn), "> "+strings.Replace(dst, ":", ".", 1)+": Flags [S]") {
		t.Errorf("tcpdump -r found no SYN to %s: %v\n%s", dst, err, syn)
	}
	payload, err := exec.Command("tcpdump", "-r", o.pcap, "-nn", "-A", "tcp dst port 80").Output()
	if err != nil || !regexp.MustCompile(`GET `+regexp.QuoteMeta(o.web.Path)+` HTTP/1.1`).Match(payload) {
		t.Errorf("tcpdump -r found no request for %s: %v", o.web.Path, err)
	}
}

// TestObservePcapSizeLimit: the capture stops before the limit, with one
// log line.
func TestObservePcapSizeLimit(t *testing.T) {
	t.Parallel()
	const limit = 50_000
	o := newObserved(t, "--pcap-max-size", strconv.Itoa(limit))
	if _, err := runIn(t, o.app, 30*time.Second, "curl", "-sS", "-o", "/dev/null", "-r", "0-999999", o.url()); err != nil {
		t.Fatal(err)
	}
	if err := o.gw.WaitOutput("size limit reached", 5*time.Second); err != nil {
		t.Error(err)
	}
	fi, err := os.Stat(o.pcap)
	if err != nil || fi.Size() > limit || fi.Size() < limit/2 {
		t.Errorf("pcap file: %v, %v; want at most %d bytes (and most of them)", fi.Size(), err, limit)
	}
	if out, err := exec.Command("tcpdump", "-r", o.pcap, "-nn").CombinedOutput(); err != nil {
		t.Errorf("tcpdump -r of the cut file: %v\n%s", err, out)
	}
	if n := strings.Count(o.gw.Output(), "size limit reached"); n != 1 {
		t.Errorf("%d log lines about the limit, want 1", n)
	}
}

// TestObserveDNSMetrics: fake DNS answers count by type and outcome, the
// table's names are counted, and a flow to a fake address is logged with
// its name.
func TestObserveDNSMetrics(t *testing.T) {
	t.Parallel()
	netlab.RequireBinary(t, "dig")
	o := newObserved(t, "--dns-mode", "fake")
	out, err := runIn(t, o.app, 20*time.Second, "dig", "@"+o.srvAddr(false).String(), "web.tungate.test", "A", "+short", "+time=2", "+tries=1")
	if err != nil || !strings.HasPrefix(out, "198.19.") {
		t.Fatalf("dig: %q, %v; want a fake address", out, err)
	}
	runIn(t, o.app, 20*time.Second, "dig", "@"+o.srvAddr(false).String(), "web.tungate.test", "MX", "+short", "+time=2", "+tries=1")
	m := o.scrape(t)
	for series, want := range map[string]float64{
		`tungate_dns_queries_total{outcome="noerror",type="A"}`:  1,
		`tungate_dns_queries_total{outcome="noerror",type="MX"}`: 1,
		`tungate_fakedns_names`:                                  1,
	} {
		if got := metric(t, m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	// The host cannot resolve the name, so the dial fails, by name.
	runIn(t, o.app, 20*time.Second, "curl", "-sS", "-m", "10", "http://"+out+"/")
	rec := o.record(t, out+":80", func(f flowInfo) bool { return f.Protocol == "tcp" })
	if rec.Name != "web.tungate.test" || rec.End != "dial_failed" {
		t.Errorf("flow log record %+v; want name web.tungate.test, end dial_failed", rec)
	}
}
