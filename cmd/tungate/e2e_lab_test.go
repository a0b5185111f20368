package main_test

// The end-to-end tests run the built tungate binary between real network
// namespaces. Each test builds its own topology:
//
//	app (A) --default routes--> TUN --> tungate (root ns) --> veth --> server (S)
//
// tungate runs in the test's own namespace with --netns A, so every flow from
// A is terminated by tungate and re-dialed through a host socket over the
// veth pair to S. With TUNGATE_E2E_GATEWAY=kernel, A is wired straight to S
// instead and tungate-specific tests skip: a test that passes there and fails
// through tungate points at tungate, not at the test.

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

func TestMain(m *testing.M) { netlab.Main(m) }

// topo is one test's topology.
type topo struct {
	app, srv *netlab.NS
	net      netlab.Subnet
	// dev is tungate's TUN device in app; empty in kernel mode.
	dev string
	// gw is the running tungate; nil in kernel mode.
	gw *netlab.Tungate
}

// Host numbers within the test subnet.
const (
	hostGateway = 1 // the root namespace's end of the veth pair
	hostServer  = 2 // S
	hostDead    = 3 // routed to S's link, held by nobody
)

// kernelMode reports whether the topology bypasses tungate (see above).
func kernelMode() bool { return os.Getenv("TUNGATE_E2E_GATEWAY") == "kernel" }

// newTopo builds the topology and starts tungate with --connect-timeout 2s
// and extraArgs.
func newTopo(t *testing.T, extraArgs ...string) *topo {
	t.Helper()
	netlab.RequireRoot(t)
	netlab.PeerPath(t) // built now, so that no timed step includes the build
	tp := &topo{net: netlab.NewSubnet(t)}
	tp.app = netlab.NewNS(t, "tga")
	tp.srv = netlab.NewNS(t, "tgs")
	gwAddrs := []netip.Prefix{tp.net.Prefix4(hostGateway), tp.net.Prefix6(hostGateway)}
	srvAddrs := []netip.Prefix{tp.net.Prefix4(hostServer), tp.net.Prefix6(hostServer)}
	if kernelMode() {
		netlab.Veth(t, tp.app, tp.srv, gwAddrs, srvAddrs)
	} else {
		netlab.Veth(t, netlab.Root(), tp.srv, gwAddrs, srvAddrs)
	}
	netlab.DefaultRoutes(t, tp.srv, tp.net.V4(hostGateway), tp.net.V6(hostGateway))
	if kernelMode() {
		return tp
	}
	tp.dev = netlab.UniqueName("tg")
	args := []string{"--netns", tp.app.Name, "--device", "tun://" + tp.dev, "--connect-timeout", "2s"}
	tp.gw = netlab.StartTungate(t, append(args, extraArgs...)...)
	return tp
}

// srvPort returns S's address in the given family with port.
func (tp *topo) srvPort(v6 bool, port uint16) string {
	return netip.AddrPortFrom(tp.srvAddr(v6), port).String()
}

func (tp *topo) srvAddr(v6 bool) netip.Addr {
	return tp.net.Addr(hostServer, v6)
}

func (tp *topo) deadAddr(v6 bool) netip.Addr {
	return tp.net.Addr(hostDead, v6)
}

// families names the subtests run once per IP version.
var families = []struct {
	name string
	v6   bool
}{{"v4", false}, {"v6", true}}

// runIn runs a command in ns with a limit and returns its combined output and
// error, failing the test only if it could not be started.
func runIn(t *testing.T, ns *netlab.NS, limit time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	out, err := ns.Exec(ctx, name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// peer runs a peer client in the app namespace and fails the test unless it
// succeeds; it returns the peer's "ok ..." line.
func (tp *topo) peer(t *testing.T, args ...string) string {
	t.Helper()
	out, err := netlab.RunPeer(t, tp.app, args...)
	if err != nil {
		t.Fatalf("peer %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}
