package main_test

// End-to-end tests of DNS in --netns mode: tungate answers at its resolver
// address in the device's subnet, forwarding to the host's resolver (here
// a dnsmasq on 127.0.0.53, as systemd-resolved listens), and writes
// /etc/netns/NAME/resolv.conf so that `ip netns exec NAME` uses it.

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// netnsDNSLab is a namespace that plays the host (with its own resolver
// on 127.0.0.53 and a web server behind a veth, whose address
// test.example has) and a named app namespace, with tungate running in
// the host namespace serving --netns app.
type netnsDNSLab struct {
	host, app *netlab.NS
	web       netip.Addr
	nginx     *netlab.Nginx
}

func newNetNSDNSLab(t *testing.T) *netnsDNSLab {
	t.Helper()
	netlab.RequireRoot(t)
	netlab.RequireBinary(t, "dig")
	netlab.RequireBinary(t, "curl")
	if kernelMode() {
		t.Skip("tests tungate's resolver")
	}
	l := &netnsDNSLab{host: netlab.NewNS(t, "tgh"), app: netlab.NewNS(t, "tga")}
	srv := netlab.NewNS(t, "tgs")
	sub := netlab.NewSubnet(t)
	netlab.Veth(t, l.host, srv, []netip.Prefix{sub.Prefix4(1)}, []netip.Prefix{sub.Prefix4(2)})
	l.web = sub.V4(2)
	l.nginx = netlab.StartNginx(t, srv, 1000)
	// The host namespace's /etc/resolv.conf names 127.0.0.53 only.
	if err := os.MkdirAll(netlab.EtcNetNS(l.host.Name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(netlab.EtcNetNS(l.host.Name), "resolv.conf"), []byte("nameserver 127.0.0.53\nsearch tungate.invalid\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	netlab.StartDNSMasq(t, l.host, []netip.Addr{netip.MustParseAddr("127.0.0.53")}, map[string][]netip.Addr{"test.example": {l.web}})
	return l
}

// start runs tungate in the host namespace with --netns app.
func (l *netnsDNSLab) start(t *testing.T, args ...string) *netlab.Tungate {
	t.Helper()
	args = append([]string{"--netns", l.app.Name, "--device", "tun://" + netlab.UniqueName("tg")}, args...)
	return netlab.StartTungateCommand(t, l.host.Exec(context.Background(), netlab.TungatePath(t), args...))
}

func (l *netnsDNSLab) run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return l.app.Run(ctx, name, args...)
}

// TestNetNSDNSHostResolver: with no set-up beyond --netns, `ip netns exec
// APP dig` and curl by name work through tungate's resolver at
// 198.18.0.2, which asks the host's resolver on 127.0.0.53; the
// resolv.conf tungate wrote is gone once it stops.
func TestNetNSDNSHostResolver(t *testing.T) {
	l := newNetNSDNSLab(t)
	gw := l.start(t)
	conf := filepath.Join(netlab.EtcNetNS(l.app.Name), "resolv.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatalf("tungate wrote no resolv.conf for the namespace: %v", err)
	}
	if !strings.Contains(string(b), "nameserver 198.18.0.2\n") || !strings.Contains(string(b), "search tungate.invalid") {
		t.Errorf("%s:\n%s", conf, b)
	}
	out, err := l.run(t, "dig", "+short", "+tries=1", "+time=5", "test.example", "A")
	if err != nil || strings.TrimSpace(out) != l.web.String() {
		t.Errorf("dig test.example in the namespace: %q, %v; want %s", out, err, l.web)
	}
	out, err = l.run(t, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "--max-time", "10", "http://test.example"+l.nginx.Path)
	if err != nil || out != "200 1000" {
		t.Errorf("curl http://test.example/ in the namespace: %q, %v; want 200 1000", out, err)
	}
	gw.Stop()
	if _, err := os.Stat(netlab.EtcNetNS(l.app.Name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after tungate stopped, %s: %v; want it removed", netlab.EtcNetNS(l.app.Name), err)
	}
}

// TestNetNSDNSResolvConfExists: a resolv.conf that was there before is
// left alone, and tungate says why DNS may not work.
func TestNetNSDNSResolvConfExists(t *testing.T) {
	l := newNetNSDNSLab(t)
	conf := filepath.Join(netlab.EtcNetNS(l.app.Name), "resolv.conf")
	const mine = "nameserver 192.0.2.1\n"
	if err := os.MkdirAll(netlab.EtcNetNS(l.app.Name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	gw := l.start(t)
	if err := gw.WaitOutput("was there before tungate started", 5*time.Second); err != nil {
		t.Errorf("no warning about the resolv.conf that existed: %v", err)
	}
	// The resolver answers all the same, for whoever asks it.
	out, err := l.run(t, "dig", "+short", "+tries=1", "+time=5", "@198.18.0.2", "test.example", "A")
	if err != nil || strings.TrimSpace(out) != l.web.String() {
		t.Errorf("dig @198.18.0.2 test.example: %q, %v; want %s", out, err, l.web)
	}
	gw.Stop()
	if b, err := os.ReadFile(conf); err != nil || string(b) != mine {
		t.Errorf("the resolv.conf that was there before: %q, %v; want it untouched", b, err)
	}
}

// TestRunNetnsPathDNS: a namespace kept by `run --netns-path` under
// /run/netns gets /etc/netns/NAME/resolv.conf too, so `ip netns exec NAME`
// resolves through tungate's resolver with no set-up.
func TestRunNetnsPathDNS(t *testing.T) {
	netlab.RequireBinary(t, "dig")
	netlab.RequireBinary(t, "curl")
	srv := newRunServer(t)
	web := netlab.StartNginx(t, srv.ns, 1000)
	netlab.StartDNSMasq(t, srv.ns, []netip.Addr{srv.addr(false)}, map[string][]netip.Addr{"kept.example": {srv.addr(false)}})
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		t.Fatal(err)
	}
	name := netlab.UniqueName("tgkeep")
	netlab.CleanEtcNetNS(t, name)
	g := netlab.StartTungate(t, "run", "--log-level", "info", "--dns", srv.addr(false).String(), "--netns-path", "/run/netns/"+name)
	ns := &netlab.NS{Name: name}
	out := ns.MustRun(t, "dig", "+short", "+tries=1", "+time=5", "kept.example", "A")
	if strings.TrimSpace(out) != srv.addr(false).String() {
		t.Errorf("dig kept.example in the kept namespace: %q, want %s", out, srv.addr(false))
	}
	out = ns.MustRun(t, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "--max-time", "10", "http://kept.example"+web.Path)
	if out != "200 1000" {
		t.Errorf("curl http://kept.example/ in the kept namespace: %q, want 200 1000", out)
	}
	g.Stop()
	if _, err := os.Stat(netlab.EtcNetNS(name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after tungate stopped, %s: %v; want it removed", netlab.EtcNetNS(name), err)
	}
}
