package netlab

import (
	"context"
	"io"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestUniqueName(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		name := UniqueName("longprefix")
		if len(name) > 15 {
			t.Fatalf("UniqueName = %q: %d bytes, want at most 15", name, len(name))
		}
		if seen[name] {
			t.Fatalf("UniqueName returned %q twice", name)
		}
		seen[name] = true
	}
}

func TestSubnetAddrs(t *testing.T) {
	s := Subnet{N: 42}
	for got, want := range map[netip.Prefix]string{
		s.Prefix4(2): "10.200.42.2/24",
		s.Prefix6(2): "fd00:7467:2a::2/64",
	} {
		if got.String() != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

// TestKernelPath wires two namespaces with a plain veth pair and runs the
// peer's checks across it: the lab itself must work before it can judge a
// gateway.
func TestKernelPath(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	sub := NewSubnet(t)
	a, b := NewNS(t, "nla"), NewNS(t, "nlb")
	Veth(t, a, b, []netip.Prefix{sub.Prefix4(1), sub.Prefix6(1)}, []netip.Prefix{sub.Prefix4(2), sub.Prefix6(2)})
	srv4, srv6 := netip.AddrPortFrom(sub.V4(2), 7000).String(), netip.AddrPortFrom(sub.V6(2), 7000).String()
	srv := StartPeer(t, b, "-tcp-sink", srv4, "-tcp-txfirst", srv6, "-udp-echo", srv4, "-tcp-echo", netip.AddrPortFrom(sub.V4(2), 7001).String())

	for _, args := range [][]string{
		{"send", "-addr", srv4, "-size", "1000000"},
		{"udp", "-addr", srv4, "-size", "1400"},
		{"echo", "-addr", netip.AddrPortFrom(sub.V4(2), 7001).String(), "-conns", "20"},
	} {
		if out, err := RunPeer(t, a, args...); err != nil || !strings.HasPrefix(out, "ok") {
			t.Errorf("peer %v: %v\n%s", args, err, out)
		}
	}
	out, err := RunPeer(t, a, "recvfirst", "-addr", srv6, "-size", "5000")
	if err != nil {
		t.Fatalf("peer recvfirst: %v\n%s", err, out)
	}
	if err := srv.WaitOutput("txfirst "+strings.TrimPrefix(out, "ok "), 5*time.Second); err != nil {
		t.Error(err)
	}
	if out, err := RunPeer(t, a, "dial", "-addr", netip.AddrPortFrom(sub.V4(2), 9).String()); err == nil || !strings.Contains(out, "connection refused") {
		t.Errorf("dial closed port: want connection refused, got %v\n%s", err, out)
	}

	if _, err := exec.LookPath("iperf3"); err == nil {
		StartIperf3(t, b, sub.V6(2), 5201)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if out, err := a.Run(ctx, "iperf3", "-c", sub.V6(2).String(), "-p", "5201", "-t", "1"); err != nil {
			t.Errorf("iperf3: %v\n%s", err, out)
		}
	}

	// Do really enters the namespace: b's address is local there only.
	conn, err := b.Dial(context.Background(), "tcp", srv4)
	if err != nil {
		t.Fatalf("Dial from inside b: %v", err)
	}
	defer conn.Close()
	if local := conn.LocalAddr().String(); !strings.HasPrefix(local, sub.V4(2).String()+":") {
		t.Errorf("connection from b has local address %s, want %s", local, sub.V4(2))
	}
	_, _ = io.WriteString(conn, "x")
}
