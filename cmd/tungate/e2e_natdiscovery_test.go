package main_test

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// TestNATDiscoveryThroughTungate runs coturn's turnutils_natdiscovery, a
// client nobody here wrote, against turnserver listening on two of S's
// addresses (what RFC 5780's tests need): through tungate it must report
// endpoint-independent mapping, and endpoint-independent filtering with
// --udp-filter endpoint (the default).
func TestNATDiscoveryThroughTungate(t *testing.T) {
	t.Parallel()
	netlab.RequireBinary(t, "turnserver")
	netlab.RequireBinary(t, "turnutils_natdiscovery")
	for _, tc := range []struct{ filter, want string }{
		{"endpoint", "NAT with Endpoint Independent Filtering"},
		{"address", "NAT with Address Dependent Filtering"},
		{"port", "NAT with Address and Port Dependent Filtering"},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			t.Parallel()
			l := newNATLab(t, "--udp-filter", tc.filter)
			for _, fam := range families {
				t.Run(fam.name, func(t *testing.T) {
					out := natDiscovery(t, l, fam.v6)
					for _, want := range []string{"NAT with Endpoint Independent Mapping", tc.want} {
						if !strings.Contains(out, want) {
							t.Errorf("natdiscovery did not report %q:\n%s", want, out)
						}
					}
				})
			}
		})
	}
}

// natDiscovery runs turnserver on two of S's addresses and
// turnutils_natdiscovery -m -f against it from the app, and returns what
// the client printed.
func natDiscovery(t *testing.T, l *natLab, v6 bool) string {
	t.Helper()
	a1, a2 := l.addr(hostServer, v6), l.addr(hostReflector2, v6)
	return natDiscoveryAt(t, l.srv, l.app, a1, a2, a1.String(), "-m", "-f")
}

// natDiscoveryAt runs turnserver in srvNS on a1 and a2 and
// turnutils_natdiscovery with flags against server (a1, or a name for it)
// from app, and returns what the client printed.
func natDiscoveryAt(t *testing.T, srvNS, app *netlab.NS, a1, a2 netip.Addr, server string, flags ...string) string {
	t.Helper()
	dir := t.TempDir()
	srv := srvNS.Start(t, "turnserver", "-n", "--stun-only", "--no-auth", "--no-tls", "--no-dtls", "--no-cli",
		"-L", a1.String(), "-L", a2.String(), "--listening-port", "3478", "--alt-listening-port", "3479",
		"--pidfile", filepath.Join(dir, "turnserver.pid"), "--db", filepath.Join(dir, "turndb"),
		"--log-file", "stdout", "--simple-log")
	if err := srv.WaitOutput("Total General servers", 10*time.Second); err != nil {
		t.Fatalf("turnserver did not start: %v", err)
	}
	out, err := runIn(t, app, 60*time.Second, "turnutils_natdiscovery", append(flags, server)...)
	if err != nil {
		t.Fatalf("turnutils_natdiscovery %s %s: %v\n%s", strings.Join(flags, " "), server, err, out)
	}
	srv.Stop(3 * time.Second)
	return out
}
