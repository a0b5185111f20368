package main_test

// End-to-end tests of the host's loopback under `tungate run`: closed in
// every form, open at one mapped address with --allow-host-loopback.

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// hostLoopbackServer listens on the host's 127.0.0.1 and ::1 on one port
// and counts connections; each gets "HOST" and is closed.
type hostLoopbackServer struct {
	port     int
	accepted atomic.Int64
}

func startHostLoopbackServer(t *testing.T) *hostLoopbackServer {
	t.Helper()
	s := &hostLoopbackServer{}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		if s.port != 0 {
			addr = net.JoinHostPort(strings.Trim(addr[:strings.LastIndexByte(addr, ':')], "[]"), strconv.Itoa(s.port))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		s.port = ln.Addr().(*net.TCPAddr).Port
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				s.accepted.Add(1)
				c.Write([]byte("HOST\n"))
				c.Close()
			}
		}()
	}
	return s
}

// loopbackForms are destinations that reach the host's loopback if dialed
// from the host.
var loopbackForms = []string{"127.0.0.1", "127.7.7.7", "0.0.0.0", "[::]", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:0.0.0.0]"}

func TestRunHostLoopback(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.RequireBinary(t, "curl")
	hs := startHostLoopbackServer(t)
	mapped := []string{"198.18.0.3", "[fd74:6761:7465::3]"}
	// Each connect must fail at once (refused, exit 7) or succeed, never
	// hang: the script prints one line per destination.
	script := `for a in "$@"; do
		start=$(date +%s%N)
		out=$(curl -sS --max-time 5 "telnet://$a:` + strconv.Itoa(hs.port) + `" </dev/null 2>/dev/null)
		rc=$?
		echo "$a rc=$rc ms=$(( ($(date +%s%N) - start) / 1000000 )) out=$out"
	done`
	run := func(flags ...string) map[string]string {
		args := append(flags, "--", "sh", "-c", script, "sh")
		args = append(args, loopbackForms...)
		args = append(args, mapped...)
		r := tungateRun(t, nil, args...).mustSucceed(t, "connect script")
		got := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			a, rest, _ := strings.Cut(line, " ")
			got[a] = rest
		}
		return got
	}
	refused := func(res string) bool {
		var rc, ms int
		fmt.Sscanf(res, "rc=%d ms=%d", &rc, &ms)
		return rc == 7 && ms < 2000
	}
	got := run()
	for _, a := range append(loopbackForms, mapped...) {
		if !refused(got[a]) {
			t.Errorf("without --allow-host-loopback, %s: %q; want refused at once (curl status 7)", a, got[a])
		}
	}
	if n := hs.accepted.Load(); n != 0 {
		t.Errorf("host loopback accepted %d connections without --allow-host-loopback", n)
	}
	got = run("--allow-host-loopback")
	for _, a := range mapped {
		if !strings.HasSuffix(got[a], "out=HOST") {
			t.Errorf("with --allow-host-loopback, %s: %q; want the host's loopback server", a, got[a])
		}
	}
	for _, a := range loopbackForms {
		if !refused(got[a]) {
			t.Errorf("with --allow-host-loopback, %s: %q; want refused (only the mapped addresses reach the host)", a, got[a])
		}
	}
	if n := hs.accepted.Load(); n != int64(len(mapped)) {
		t.Errorf("host loopback accepted %d connections, want %d (the mapped addresses only)", n, len(mapped))
	}
}

// TestRunHostLoopbackCrafted sends SYNs for every loopback form straight
// into the TUN device from inside (root in the namespace can), bypassing
// the kernel's own handling of those addresses, and checks that none
// reaches the host's loopback.
func TestRunHostLoopbackCrafted(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.RequireBinary(t, "python3")
	hs := startHostLoopbackServer(t)
	script, err := filepath.Abs("../../testdata/craft_syn.py")
	if err != nil {
		t.Fatal(err)
	}
	var dsts []string
	for _, a := range append(loopbackForms, "198.18.0.3", "[fd74:6761:7465::3]") {
		dsts = append(dsts, a+":"+strconv.Itoa(hs.port))
	}
	r := tungateRun(t, nil, append([]string{"--", "python3", script}, dsts...)...).mustSucceed(t, "craft_syn.py")
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if strings.HasSuffix(line, "SYNACK") {
			t.Errorf("crafted SYN %s was accepted", line)
		}
	}
	if len(strings.Split(strings.TrimSpace(r.stdout), "\n")) != len(dsts) {
		t.Errorf("craft_syn.py output:\n%s", r.stdout)
	}
	time.Sleep(200 * time.Millisecond)
	if n := hs.accepted.Load(); n != 0 {
		t.Errorf("host loopback accepted %d crafted connections", n)
	}
	t.Logf("crafted SYNs:\n%s", r.stdout)
}
