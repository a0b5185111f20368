package main_test

// End-to-end tests of the flow table beyond TCP and UDP: echo
// conversations (real ping), the published ports of `tungate run` (real
// curl), and what must never show in it (a proxy's password) or be
// reached through it (tungate's API by a name the host resolves to
// loopback).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// TestObserveEchoFlows: real pings are echo flows in the table (protocol
// icmp, the echo identifier as the source port), each ends idle with a
// flow log line counting the requests and replies and their payload, and
// the flow metrics move.
func TestObserveEchoFlows(t *testing.T) {
	t.Parallel()
	netlab.RequireBinary(t, "ping")
	o := newObserved(t)
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			dst := netip.AddrPortFrom(o.srvAddr(fam.v6), 0).String()
			done := make(chan string, 1)
			go func() {
				out, err := runIn(t, o.app, 20*time.Second, "ping", "-c", "3", "-i", "0.5", "-W", "2", o.srvAddr(fam.v6).String())
				done <- fmt.Sprintf("%s (err %v)", out, err)
			}()
			live := o.flowTo(t, dst, func(f flowInfo) bool { return f.Protocol == "icmp" && f.State == "open" })
			if table, err := o.tungateFlows(t); err != nil || !strings.Contains(table, "icmp") {
				t.Errorf("tungate flows: %v\n%s", err, table)
			} else {
				t.Logf("tungate flows while ping runs:\n%s", table)
			}
			if out := <-done; !strings.Contains(out, " 3 received") {
				t.Fatalf("ping: %s", out)
			}
			rec := o.record(t, dst, func(f flowInfo) bool { return f.Protocol == "icmp" })
			// ping sends 56 bytes of data in each request, which the
			// reply echoes.
			if rec.End != "idle" || rec.PacketsUp == nil || *rec.PacketsUp != 3 || *rec.PacketsDown != 3 ||
				rec.BytesUp != 3*56 || rec.BytesDown != 3*56 {
				t.Errorf("flow log record %+v, want 3 requests and 3 replies of 56 bytes, ended idle (live: %+v)", rec, live)
			}
		})
	}
	text := o.scrape(t)
	if n := metric(t, text, `tungate_flows_opened_total{hop="",outcome="relayed",protocol="icmp"}`); n != 2 {
		t.Errorf("icmp flows opened: %v, want 2", n)
	}
	if n := metric(t, text, `tungate_icmp_echo_messages_total{direction="down"}`); n != 6 {
		t.Errorf("echo replies counted: %v, want 6", n)
	}
}

// inboundFlow is what the test reads of a published port's flow.
type inboundFlow struct {
	Protocol  string `json:"protocol"`
	Src       string `json:"src"`
	Dst       string `json:"dst"`
	Route     string `json:"route"`
	Direction string `json:"direction"`
	State     string `json:"state"`
	BytesUp   uint64 `json:"bytes_up"`
	BytesDown uint64 `json:"bytes_down"`
	End       string `json:"end"`
}

// TestObservePublishedFlow: a curl from the host to a port that `tungate
// run -p` publishes is an inbound flow in `tungate flows --json` while it
// runs, routed "published 127.0.0.1:PORT", and its flow log line counts
// the response as sent by the app (up) and the request as received.
func TestObservePublishedFlow(t *testing.T) {
	t.Parallel()
	netlab.RequireRoot(t)
	netlab.RequireBinary(t, "socat")
	netlab.RequireBinary(t, "curl")
	port := freePort(t)
	dir := t.TempDir()
	sock, flowLog := filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "flows.jsonl")
	// The server answers after a second, so that the flow is seen live.
	// printf sends a 39-byte header and a 16-byte body.
	const script = `sleep 1; printf 'HTTP/1.0 200 OK\r\nContent-Length: 16\r\n\r\npublished hello\n'` + "\n"
	serve := filepath.Join(dir, "serve.sh")
	if err := os.WriteFile(serve, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startHeldRun(t, "run", "-p", fmt.Sprintf("127.0.0.1:%d:8080", port),
		"--control", sock, "--flow-log", flowLog, "--",
		"sh", "-c", `socat TCP-LISTEN:8080,reuseaddr,fork "EXEC:sh $1" & cat`, "sh", serve)
	defer func() {
		r.stop()
		if t.Failed() {
			t.Logf("tungate run:\n%s", r.stderr.String())
		}
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	curl := func() (string, error) {
		out, err := exec.Command("curl", "-sS", "-m", "10", "-o", "/dev/null", "-w", "%{local_port} %{size_request} %{size_header} %{size_download}", url).CombinedOutput()
		return string(out), err
	}
	// Until socat listens inside, the connection is reset.
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := curl(); err == nil {
			break
		} else if time.Now().After(end) {
			t.Fatalf("the published port never answered: %v", err)
		}
	}
	done := make(chan string, 1)
	go func() {
		out, err := curl()
		if err != nil {
			out += " " + err.Error()
		}
		done <- out
	}()
	route := fmt.Sprintf("published 127.0.0.1:%d", port)
	var live []inboundFlow
	seen := false
	for end := time.Now().Add(5 * time.Second); !seen && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		out, err := netlab.TungateCommand(t, context.Background(), "flows", "--control", sock, "--json").Output()
		if err != nil || json.Unmarshal(out, &live) != nil {
			t.Fatalf("tungate flows --json: %v\n%s", err, out)
		}
		for _, f := range live {
			seen = seen || f.Route == route && f.Direction == "inbound" && f.Protocol == "tcp" && f.State == "open"
		}
	}
	if !seen {
		t.Errorf("no live inbound flow routed %q in tungate flows --json: %+v", route, live)
	} else if table, err := netlab.TungateCommand(t, context.Background(), "flows", "--control", sock).Output(); err == nil {
		t.Logf("tungate flows while curl runs:\n%s", table)
	}
	var localPort, request, header, body uint64
	out := <-done
	if _, err := fmt.Sscan(out, &localPort, &request, &header, &body); err != nil || body != 16 {
		t.Fatalf("curl: %q", out)
	}
	src := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(localPort)).String()
	var rec inboundFlow
	for end := time.Now().Add(10 * time.Second); rec.Src != src && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		log, _ := os.ReadFile(flowLog)
		for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
			var r inboundFlow
			if json.Unmarshal([]byte(line), &r) == nil && r.Src == src {
				rec = r
			}
		}
	}
	if rec.Src != src || rec.Route != route || rec.Direction != "inbound" || rec.Dst != "198.18.0.1:8080" ||
		rec.BytesUp != header+body || rec.BytesDown != request || rec.End != "closed" {
		t.Errorf("flow log record %+v, want %s -> 198.18.0.1:8080 with %d bytes up and %d down", rec, src, header+body, request)
	}
}

// TestObserveNoProxyPassword: with a proxy that takes a password, the
// password shows nowhere: not in /flows (while a download through the
// proxy runs), the metrics, the flow log, the pcap file's name or the log
// (at debug level, with a failed dial through the proxy logged too).
func TestObserveNoProxyPassword(t *testing.T) {
	t.Parallel()
	const secret = "secretpass"
	l := newProxyLab(t, 4<<20)
	l.startMicrosocks(t, portMicroAuth, "user", secret)
	dir := t.TempDir()
	sock, flowLog, pcap := filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "flows.jsonl"), filepath.Join(dir, "tun.pcap")
	metrics := "127.0.0.1:" + strconv.Itoa(freePort(t))
	app, gw := l.gateway(t, "--proxy", l.proxyURL("socks5", url.UserPassword("user", secret), portMicroAuth),
		"--metrics", metrics, "--control", sock, "--flow-log", flowLog, "--pcap", pcap, "--log-level", "debug")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow := app.Exec(ctx, "curl", "-sS", "-o", "/dev/null", "--limit-rate", "500k", l.webURL(false))
	if err := slow.Start(); err != nil {
		t.Fatal(err)
	}
	defer slow.Wait()
	get := func(path string) string {
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + metrics + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	var flows string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if flows = get("/flows"); strings.Contains(flows, "socks5://user@") {
			break
		}
	}
	if !strings.Contains(flows, "socks5://user@") {
		t.Fatalf("no flow through the proxy in /flows: %s", flows)
	}
	cancel()
	slow.Wait()
	wantRefused(t, app, netip.AddrPortFrom(l.srvAddr(false), portClosed).String(), 5*time.Second)
	if err := gw.WaitOutput("proxy dial failed", 5*time.Second); err != nil {
		t.Fatalf("no warning for the refused destination: %v", err)
	}
	text := get("/metrics")
	if !strings.Contains(text, `chain="proxy"`) {
		t.Errorf("no dial latency of the proxy chain in the metrics")
	}
	var log []byte
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if log, _ = os.ReadFile(flowLog); strings.Contains(string(log), "dial_refused") {
			break
		}
	}
	names, _ := os.ReadDir(dir)
	var listing strings.Builder
	for _, e := range names {
		listing.WriteString(e.Name() + "\n")
	}
	for what, s := range map[string]string{"/flows": flows, "/metrics": text, "the flow log": string(log),
		"the pcap directory": listing.String(), "the log": gw.Output()} {
		if strings.Contains(s, secret) {
			t.Errorf("%s holds the password:\n%s", what, s)
		}
	}
	if !strings.Contains(string(log), "socks5://user@") {
		t.Errorf("the flow log names no route through the proxy:\n%s", log)
	}
}

// loopbackHostName returns a name that /etc/hosts maps to 127.0.0.1 or
// ::1 (not localhost, which fake DNS never answers), with its address.
func loopbackHostName(t *testing.T) (string, netip.Addr) {
	t.Helper()
	hosts, _ := os.ReadFile("/etc/hosts")
	for _, line := range strings.Split(string(hosts), "\n") {
		fields := strings.Fields(strings.SplitN(line, "#", 2)[0])
		if len(fields) < 2 {
			continue
		}
		a, err := netip.ParseAddr(fields[0])
		if err != nil || (a != netip.MustParseAddr("127.0.0.1") && a != netip.IPv6Loopback()) {
			continue
		}
		for _, name := range fields[1:] {
			if name != "localhost" && !strings.HasSuffix(name, ".localhost") && strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-.") == "" {
				return name, a
			}
		}
	}
	t.Skip("no name in /etc/hosts for 127.0.0.1 or ::1 but localhost")
	return "", netip.Addr{}
}

// TestObserveAPINotReachedByName: with fake DNS, a flow to a name that
// the host resolves to loopback is dialed from the host by name; it
// reaches a server on the host's loopback (with --allow-host-loopback;
// --netns mode refuses it otherwise), but never the --metrics listener
// there: that is refused once the name resolved, and logged as blocked.
func TestObserveAPINotReachedByName(t *testing.T) {
	t.Parallel()
	if kernelMode() {
		t.Skip("tungate's own API")
	}
	netlab.RequireBinary(t, "curl")
	name, addr := loopbackHostName(t)
	hs := startHostLoopbackServer(t)
	metrics := netip.AddrPortFrom(addr, uint16(freePort(t)))
	flowLog := filepath.Join(t.TempDir(), "flows.jsonl")
	tp := newTopo(t, "--dns-mode", "fake", "--allow-host-loopback", "--metrics", metrics.String(), "--control", "none", "--flow-log", flowLog)
	// The app's own hosts file lacks the name, so it asks fake DNS.
	if err := os.WriteFile(filepath.Join("/etc/netns", tp.app.Name, "hosts"), []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runIn(t, tp.app, 10*time.Second, "curl", "-sS", "-m", "5", "--http0.9", fmt.Sprintf("http://%s:%d/", name, hs.port))
	if !strings.Contains(out, "HOST") {
		t.Fatalf("curl to %s (the host's %s) on the loopback server's port: %v\n%s", name, addr, err, out)
	}
	out, err = runIn(t, tp.app, 10*time.Second, "curl", "-sS", "-m", "5", fmt.Sprintf("http://%s:%d/metrics", name, metrics.Port()))
	if err == nil || strings.Contains(out, "tungate_") {
		t.Fatalf("curl to %s on the metrics port reached the API: %v\n%s", name, err, out)
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		log, _ := os.ReadFile(flowLog)
		var r flowInfo
		for _, line := range strings.Split(string(log), "\n") {
			if json.Unmarshal([]byte(line), &r) == nil && r.Name == name && r.End == "blocked" {
				return
			}
		}
		if time.Now().After(end) {
			t.Fatalf("no blocked flow to %s in the flow log:\n%s", name, log)
		}
	}
}
