package main_test

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/cmd/internal/netlab"
	"github.com/tungate/tungate/stack/tun"
)

// TestInheritedFD serves a TUN device that the parent opened and
// configured, as Android's VpnService hands one over: `--device fd://3`.
// The fd carries plain packets (no virtio-net header), so this also runs
// the link endpoint's path without offload.
func TestInheritedFD(t *testing.T) {
	t.Parallel()
	netlab.RequireRoot(t)
	sub := netlab.NewSubnet(t)
	app, srv := netlab.NewNS(t, "tga"), netlab.NewNS(t, "tgs")
	netlab.Veth(t, netlab.Root(), srv,
		[]netip.Prefix{sub.Prefix4(hostGateway), sub.Prefix6(hostGateway)},
		[]netip.Prefix{sub.Prefix4(hostServer), sub.Prefix6(hostServer)})
	netlab.DefaultRoutes(t, srv, sub.V4(hostGateway), sub.V6(hostGateway))

	dev, err := tun.Open(tun.Config{Name: netlab.UniqueName("tg"), FD: -1, NetNS: app.Path()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	err = dev.Configure(tun.NetConfig{MTU: 1500, DefaultRoutes: true, Addresses: []netip.Prefix{
		netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("fd74:6761:7465::1/64")}})
	if err != nil {
		t.Fatal(err)
	}
	dup, err := unix.Dup(dev.FD())
	if err != nil {
		t.Fatal(err)
	}
	inherited := os.NewFile(uintptr(dup), "tun")
	defer inherited.Close()

	cmd := netlab.TungateCommand(t, context.Background(), "--device", "fd://3")
	cmd.ExtraFiles = []*os.File{inherited}
	serving := startWatching(t, cmd, "msg=serving")
	select {
	case <-serving:
	case <-time.After(10 * time.Second):
		t.Fatal("tungate did not start serving fd://3")
	}

	sink := netip.AddrPortFrom(sub.V4(hostServer), portSink)
	sink6 := netip.AddrPortFrom(sub.V6(hostServer), portSink)
	netlab.StartPeer(t, srv, "-tcp-sink", sink.String(), "-tcp-sink", sink6.String())
	for _, addr := range []netip.AddrPort{sink, sink6} {
		if out, err := netlab.RunPeer(t, app, "send", "-addr", addr.String(), "-size", fmt.Sprint(16<<20)); err != nil {
			t.Fatalf("16 MB to %s through fd://3: %v\n%s", addr, err, out)
		}
	}
}

// startWatching starts cmd and returns a channel closed once a line of its
// stderr contains want. At cleanup the process gets SIGTERM and must exit 0.
func startWatching(t *testing.T, cmd *exec.Cmd, want string) <-chan struct{} {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	seen := make(chan struct{})
	var mu sync.Mutex
	var log strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		once := sync.Once{}
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), want) {
				once.Do(func() { close(seen) })
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
		err := cmd.Wait()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Errorf("tungate after SIGTERM: %v\n%s", err, log.String())
		} else if t.Failed() {
			t.Logf("tungate output:\n%s", log.String())
		}
	})
	return seen
}
