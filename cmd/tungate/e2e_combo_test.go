package main_test

// End-to-end tests of features where they meet: --auto-route with routing
// rules, with the metrics API and tungate flows, with kill -9 and tungate
// cleanup.

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// comboName is the name the lab resolver in L answers with I's address.
const comboName = "web.combo.test"

// useLANResolver starts dnsmasq in L answering comboName with I's
// addresses, and makes it the resolver of H's /etc/resolv.conf (through
// /etc/netns/H, which `ip netns exec` mounts and the namespace's cleanup
// removes).
func (l *arLab) useLANResolver(t *testing.T) {
	t.Helper()
	netlab.StartDNSMasq(t, l.lan, []netip.Addr{l.lanAddr(false)},
		map[string][]netip.Addr{comboName: {l.internet(false), l.internet(true)}})
	dir := netlab.EtcNetNS(l.host.Name)
	netlab.CleanEtcNetNS(t, l.host.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver "+l.lanAddr(false).String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAutoRouteDomainRuleDirect: with --auto-route and a domain: rule that
// sends a name direct, the app's query gets a fake address (the hijack
// brings it to fake DNS), and tungate's own lookup of the name, for the
// direct dial, leaves with tungate's mark: it reaches the real resolver
// instead of being hijacked back into fake DNS, so the page arrives. A
// blocked name gets NXDOMAIN.
func TestAutoRouteDomainRuleDirect(t *testing.T) {
	t.Parallel()
	l := newARLab(t)
	l.useLANResolver(t)
	gw, _ := l.start(t, "--route", "domain:"+comboName+"=direct", "--route", "domain:blocked.combo.test=block")
	for _, fam := range families {
		flag := "-4"
		if fam.v6 {
			flag = "-6"
		}
		url := "http://" + comboName + l.web.Path
		out, err := runIn(t, l.host, 20*time.Second, "curl", flag, "--silent", "--show-error", "--fail", "--max-time", "10", "--output", "/dev/null", "--write-out", "%{remote_ip}", url)
		if err != nil {
			t.Fatalf("curl %s %s: %v\n%s\ntungate:\n%s", flag, url, err, out, gw.Output())
		}
		if a, err := netip.ParseAddr(strings.TrimSpace(out)); err != nil || !(a.Is4() && netip.MustParsePrefix("198.19.0.0/16").Contains(a) ||
			a.Is6() && netip.MustParsePrefix("fd74:6761:7465:fa4e::/64").Contains(a)) {
			t.Errorf("curl %s connected to %q, want a fake address (the app's DNS hijacked)", flag, out)
		}
	}
	if out, _ := dig(t, l.host, l.lanAddr(false), "blocked.combo.test"); strings.TrimSpace(out) != "" {
		t.Errorf("a blocked name was answered %q, want NXDOMAIN (no answer)", out)
	}
	stopClean(t, gw)
}

// TestAutoRouteFlowsMetricsCleanup: an --auto-route instance, after it has
// dropped its capabilities, serves tungate flows on its control socket and
// /metrics on --metrics; killed with SIGKILL it leaves its rules, which
// tungate cleanup then removes, leaving the tables as before.
func TestAutoRouteFlowsMetricsCleanup(t *testing.T) {
	t.Parallel()
	l := newARLab(t)
	before := l.tables(t)
	sock := filepath.Join(t.TempDir(), "ar.sock")
	const metricsPort = "9467"
	gw, _ := l.start(t, "--metrics", metricsPort, "--control", sock)
	bin := netlab.TungatePath(t)

	// One TCP flow held open from H through the device.
	dst := netip.AddrPortFrom(l.internet(false), arEchoPort)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := l.host.Dial(ctx, "tcp", dst.String())
	if err != nil {
		t.Fatalf("dial %s from H: %v", dst, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("combo")); err != nil {
		t.Fatal(err)
	}

	var listed []struct {
		Protocol string `json:"protocol"`
		Dst      string `json:"dst"`
		Route    string `json:"route"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := l.host.Run(ctx, bin, "flows", "--control", sock, "--json")
		if err != nil {
			t.Fatalf("tungate flows: %v", err)
		}
		if err := json.Unmarshal([]byte(out), &listed); err != nil {
			t.Fatalf("tungate flows --json: %v\n%s", err, out)
		}
		if strings.Contains(out, `"`+dst.String()+`"`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	found := false
	for _, f := range listed {
		found = found || (f.Protocol == "tcp" && f.Dst == dst.String() && f.Route == "direct")
	}
	if !found {
		t.Errorf("tungate flows does not list the open TCP flow to %s: %+v", dst, listed)
	}
	metrics, err := l.host.Run(ctx, "curl", "--silent", "--show-error", "--fail", "--max-time", "5", "http://127.0.0.1:"+metricsPort+"/metrics")
	if err != nil || !strings.Contains(metrics, `tungate_flows_open{protocol="tcp"} 1`) {
		t.Errorf("/metrics: %v; want one open TCP flow:\n%s", err, grepLines(metrics, "tungate_flows_open"))
	}

	// kill -9 leaves the routing (fail closed); cleanup removes it.
	kill9(t, gw)
	if out, err := l.host.Run(ctx, bin, "cleanup"); err != nil || !strings.Contains(out, "removed nftables table inet tungate") {
		t.Errorf("tungate cleanup after kill -9: %v\n%s", err, out)
	}
	if out, err := l.host.Run(ctx, bin, "cleanup"); err != nil || strings.TrimSpace(out) != "nothing to clean up" {
		t.Errorf("a second tungate cleanup: %v, %q; want nothing to clean up", err, out)
	}
	if after := l.tables(t); after != before {
		t.Fatalf("after kill -9 and cleanup the tables differ.\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// grepLines returns the lines of s that contain substr.
func grepLines(s, substr string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
