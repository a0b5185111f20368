package main_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// TestAutoRouteFailClosed: after kill -9, a connect to the internet fails
// at once with "network unreachable" and nothing leaves on H's outward veth;
// `tungate cleanup` restores the tables; a new instance after kill -9
// removes the leftovers (one log line) and works; a second instance beside
// a live one is refused with its pid; with --fail-open a dead tungate means
// direct traffic.
func TestAutoRouteFailClosed(t *testing.T) {
	t.Parallel()
	l := newARLab(t)
	netlab.RequireBinary(t, "tcpdump")
	before := l.tables(t)

	lanServer := netip.AddrPortFrom(l.lanNet.V4(hostGateway), arInboundPort)
	netlab.StartPeer(t, l.host, "-tcp-echo", lanServer.String())
	gw, _ := l.start(t)
	kill9(t, gw)
	// A server on H stays reachable from the LAN while tungate is dead (the
	// LAN bypass routes its replies); see the README for the internet.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	fromLAN, err := dialFrom(ctx, l.lan, l.lanAddr(false), lanServer)
	cancel()
	if err != nil {
		t.Fatalf("connect from the LAN with tungate dead: %v", err)
	}
	defer fromLAN.Close()
	exchange(t, fromLAN, "from the LAN with tungate dead")
	capFile := filepath.Join(t.TempDir(), "out.pcap")
	dump := l.host.Start(t, "tcpdump", "-i", l.upVeth, "-n", "-U", "-w", capFile, "dst", "port", fmt.Sprint(arEchoPort))
	if err := dump.WaitOutput("listening on", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		dst := netip.AddrPortFrom(l.internet(fam.v6), arEchoPort)
		began := time.Now()
		err := l.dial(dst)
		took := time.Since(began)
		if !errors.Is(err, syscall.ENETUNREACH) || took > time.Second {
			t.Errorf("connect to %s with tungate dead: %v after %v, want network unreachable within 1s", dst, err, took)
		}
	}
	_ = dump.Stop(3 * time.Second)
	if out, err := exec.Command("tcpdump", "-r", capFile, "-n").Output(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("packets left H on %s while tungate was dead (%v):\n%s", l.upVeth, err, out)
	}
	out := l.cleanup(t)
	if !strings.Contains(out, "removed") || !strings.Contains(out, "unreachable") {
		t.Errorf("tungate cleanup printed:\n%s\nwant the unreachable rules among what it removed", out)
	}
	if after := l.tables(t); after != before {
		t.Fatalf("tungate cleanup did not restore the tables.\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if out := l.cleanup(t); out != "nothing to clean up" {
		t.Errorf("a second tungate cleanup printed %q, want \"nothing to clean up\"", out)
	}

	// Restart after kill -9, and a second instance beside the first.
	kill9(t, mustStart(l.start(t)))
	gw, _ = l.start(t)
	if n := strings.Count(gw.Output(), "removed the routing leftovers"); n != 1 {
		t.Errorf("a start after kill -9 logged %d lines about leftovers, want 1:\n%s", n, gw.Output())
	}
	dst := netip.AddrPortFrom(l.internet(false), arEchoPort)
	echoFrom(t, l.host, dst)
	if !opened(gw, dst) {
		t.Fatalf("after the restart, TCP to %s did not go through tungate:\n%s", dst, gw.Output())
	}
	second, code := l.runTungate(t, "--device", "tun://"+netlab.UniqueName("tgb"), "--auto-route")
	if want := fmt.Sprintf("pid %d", gw.Pid()); code != 1 || !strings.Contains(second, want) || strings.Count(second, "\n") > 1 {
		t.Errorf("a second instance exited %d with:\n%s\nwant exit 1 and one line naming %q", code, second, want)
	}
	if out, code := l.runTungate(t, "cleanup"); code != 1 || !strings.Contains(out, fmt.Sprintf("pid %d", gw.Pid())) {
		t.Errorf("tungate cleanup beside a live instance exited %d with:\n%s\nwant 1 naming its pid", code, out)
	}
	echoFrom(t, l.host, dst) // the first is untouched
	stopClean(t, gw)
	if after := l.tables(t); after != before {
		t.Fatalf("after the restarted instance's clean stop the tables differ.\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// The device deleted under a running tungate: it exits with status 1
	// and leaves the routing in place, so captured traffic still fails.
	gw, _ = l.start(t)
	l.host.MustRun(t, "ip", "link", "del", l.dev)
	select {
	case <-gw.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("tungate did not exit after its device was deleted:\n%s", gw.Output())
	}
	if code := exitStatus(gw.Err()); code != 1 || !strings.Contains(gw.Output(), "tungate cleanup") {
		t.Errorf("after the device was deleted tungate exited %d with:\n%s\nwant 1 and a hint to run tungate cleanup", code, gw.Output())
	}
	if err := l.dial(dst); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("connect after the device was deleted: %v, want network unreachable", err)
	}
	l.cleanup(t)

	// --fail-open: a dead tungate means direct traffic.
	kill9(t, mustStart(l.start(t, "--fail-open")))
	echoFrom(t, l.host, dst)
	l.cleanup(t)
	if after := l.tables(t); after != before {
		t.Fatalf("after --fail-open and cleanup the tables differ.\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func mustStart(p *netlab.Proc, _ time.Duration) *netlab.Proc { return p }

// kill9 kills p with SIGKILL and waits until it is gone.
func kill9(t *testing.T, p *netlab.Proc) {
	t.Helper()
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("tungate did not die of SIGKILL")
	}
}

// dial connects from H to dst and closes the connection.
func (l *arLab) dial(dst netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := l.host.Dial(ctx, "tcp", dst.String())
	if err == nil {
		c.Close()
	}
	return err
}

// cleanup runs tungate cleanup in H, which must exit 0, and returns its
// output.
func (l *arLab) cleanup(t *testing.T) string {
	t.Helper()
	out, code := l.runTungate(t, "cleanup")
	if code != 0 {
		t.Fatalf("tungate cleanup exited %d:\n%s", code, out)
	}
	return out
}

// runTungate runs tungate with args in H to completion.
func (l *arLab) runTungate(t *testing.T, args ...string) (string, int) {
	t.Helper()
	bin := netlab.TungatePath(t)
	out, err := runIn(t, l.host, 20*time.Second, bin, args...)
	code := exitStatus(err)
	if code < 0 {
		t.Fatalf("tungate %s: %v", strings.Join(args, " "), err)
	}
	return out, code
}

// exitStatus is the exit status in a command's error: 0 for nil, -1 if the
// command did not exit on its own.
func exitStatus(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}
