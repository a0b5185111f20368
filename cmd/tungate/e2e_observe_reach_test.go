package main_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// The API never answers from the tunnel side: not on the app's loopback
// (its own), not on the app's own addresses, not through tungate to the
// host's addresses, and not on the control socket, which the app can see
// in the file system.

// curlFails checks that curl in ns cannot fetch url.
func curlFails(t *testing.T, ns *netlab.NS, url string) {
	t.Helper()
	out, err := runIn(t, ns, 20*time.Second, "curl", "-sS", "-m", "5", url)
	if err == nil {
		t.Errorf("from inside, %s answered: %q", url, out)
	}
}

func TestObserveAPIUnreachableFromAppNamespace(t *testing.T) {
	t.Parallel()
	if kernelMode() {
		t.Skip("tungate's own API")
	}
	netlab.RequireBinary(t, "curl")
	port := strconv.Itoa(freePort(t))
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	// Every address of the host, so that a flow to the host's veth
	// address would reach it if tungate let it.
	tp := newTopo(t, "--metrics", "[::]:"+port, "--control", sock)
	if err := tp.gw.WaitOutput("--metrics listens beyond loopback", time.Second); err != nil {
		t.Error(err)
	}
	host4 := tp.net.V4(hostGateway).String()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(host4, port) + "/metrics")
	if err != nil {
		t.Fatalf("from the host, the API does not answer on %s: %v", host4, err)
	}
	resp.Body.Close()
	for _, addr := range []string{host4, tp.net.V6(hostGateway).String(), "127.0.0.1", "::1", "198.18.0.1", "fd74:6761:7465::1"} {
		curlFails(t, tp.app, "http://"+net.JoinHostPort(addr, port)+"/metrics")
	}
	// The socket file is there for the app to see; the connection is
	// refused because the app is in another network namespace.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := tp.app.Exec(ctx, netlab.TungatePath(t), "flows", "--control", sock).CombinedOutput()
	if err == nil {
		t.Errorf("tungate flows from the app namespace answered:\n%s", out)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if out, err := netlab.TungateCommand(t, ctx2, "flows", "--control", sock).CombinedOutput(); err != nil {
		t.Errorf("tungate flows from tungate's own namespace: %v\n%s", err, out)
	}
}

// TestObserveRunAPIUnreachable: inside `tungate run --allow-host-loopback`
// the mapped host loopback reaches a host server but not the metrics port;
// 127.0.0.1 is the namespace's own; the control socket refuses CMD. --pcap
// works there too.
func TestObserveRunAPIUnreachable(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.RequireBinary(t, "curl")
	netlab.RequireBinary(t, "tcpdump")
	hs := startHostLoopbackServer(t)
	port := strconv.Itoa(freePort(t))
	dir := t.TempDir()
	sock, pcap := filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "run.pcap")
	script := `curl -sS -m 5 --http0.9 "http://198.18.0.3:$1/"; echo "host:$?"
curl -sS -m 5 "http://198.18.0.3:$2/metrics"; echo "mapped:$?"
curl -sS -m 5 "http://[fd74:6761:7465::3]:$2/metrics"; echo "mapped6:$?"
curl -sS -m 5 "http://127.0.0.1:$2/metrics"; echo "loopback:$?"
"$3" flows --control "$4"; echo "control:$?"`
	r := tungateRun(t, nil, "--metrics", port, "--control", sock, "--pcap", pcap, "--allow-host-loopback", "--",
		"sh", "-c", script, "sh", strconv.Itoa(hs.port), port, netlab.TungatePath(t), sock).mustSucceed(t, "tungate run")
	status := map[string]string{}
	for _, line := range strings.Split(r.stdout, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.Contains(k, " ") {
			status[k] = v
		}
	}
	// The server closes after its line, maybe before reading curl's
	// request (a reset then): its line is what shows the way works.
	if !strings.Contains(r.stdout, "HOST\n") || hs.accepted.Load() == 0 {
		t.Fatalf("the host-loopback mapping itself does not work:\n%s\n%s", r.stdout, r.stderr)
	}
	for _, k := range []string{"mapped", "mapped6", "loopback", "control"} {
		if status[k] == "0" || status[k] == "" {
			t.Errorf("%s: the API answered from inside (status %q)\n%s", k, status[k], r.stdout)
		}
	}
	out, err := exec.Command("tcpdump", "-r", pcap, "-nn", "tcp[tcpflags] == tcp-syn and dst host 198.18.0.3").Output()
	if err != nil || !strings.Contains(string(out), "198.18.0.3."+strconv.Itoa(hs.port)+": Flags [S]") {
		t.Errorf("the run's pcap lacks the SYN to 198.18.0.3:%d: %v\n%s", hs.port, err, out)
	}
}

// TestObserveOff: with --control none (and no --metrics or --flow-log)
// there is no socket and no flow table, and flows go on as ever.
func TestObserveOff(t *testing.T) {
	t.Parallel()
	if kernelMode() {
		t.Skip("tungate's own API")
	}
	netlab.RequireBinary(t, "curl")
	tp := newTopo(t, "--control", "none")
	web := netlab.StartNginx(t, tp.srv, 1<<20)
	out, err := runIn(t, tp.app, 30*time.Second, "sh", "-c", "curl -sS http://"+tp.srvPort(false, netlab.NginxPort)+web.Path+" | sha256sum")
	if err != nil || !strings.HasPrefix(out, web.SHA256) {
		t.Fatalf("download with --control none: %q, %v", out, err)
	}
	if _, err := os.Stat(filepath.Join("/run/tungate", tp.dev+".sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--control none, yet the default socket: %v", err)
	}
}
