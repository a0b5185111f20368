package main_test

// End-to-end tests of `tungate run`: the built binary runs real programs
// (curl, dig, getent, socat, sh) in the namespace it makes, against servers
// in a namespace the test makes:
//
//	tungate run -- CMD (own netns) --TUN--> tungate (test's ns) --veth--> server ns

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// runResult is how one `tungate run` ended.
type runResult struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// tungateRun runs `tungate run args...` to completion with stdin, in a
// process group of its own (so that it never takes the test's terminal for
// its foreground group).
func tungateRun(t *testing.T, stdin io.Reader, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := netlab.TungateCommand(t, ctx, append([]string{"run"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return runCmd(t, cmd, stdin)
}

func runCmd(t *testing.T, cmd *exec.Cmd, stdin io.Reader) runResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	r := runResult{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s: %v\nstderr:\n%s", cmd, err, r.stderr)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// mustSucceed fails the test unless r exited 0.
func (r runResult) mustSucceed(t *testing.T, what string) runResult {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit status %d\nstdout:\n%s\nstderr:\n%s", what, r.code, r.stdout, r.stderr)
	}
	return r
}

// runServer is a namespace reachable from the test's own namespace (where
// tungate dials from) over a veth pair.
type runServer struct {
	ns  *netlab.NS
	net netlab.Subnet
}

func newRunServer(t *testing.T) *runServer {
	t.Helper()
	netlab.RequireRoot(t)
	s := &runServer{ns: netlab.NewNS(t, "tgrs"), net: netlab.NewSubnet(t)}
	netlab.Veth(t, netlab.Root(), s.ns,
		[]netip.Prefix{s.net.Prefix4(1), s.net.Prefix6(1)},
		[]netip.Prefix{s.net.Prefix4(2), s.net.Prefix6(2)})
	netlab.DefaultRoutes(t, s.ns, s.net.V4(1), s.net.V6(1))
	return s
}

func (s *runServer) addr(v6 bool) netip.Addr {
	if v6 {
		return s.net.V6(2)
	}
	return s.net.V4(2)
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestRunDownload(t *testing.T) {
	netlab.RequireBinary(t, "curl")
	srv := newRunServer(t)
	web := netlab.StartNginx(t, srv.ns, 32<<20)
	for _, v6 := range []bool{false, true} {
		url := "http://" + netip.AddrPortFrom(srv.addr(v6), netlab.NginxPort).String() + web.Path
		r := tungateRun(t, nil, "--", "curl", "-sS", "--fail", "--max-time", "60", url).mustSucceed(t, "curl "+url)
		if int64(len(r.stdout)) != web.Size || sha256Hex(r.stdout) != web.SHA256 {
			t.Errorf("%s: got %d bytes with sha256 %s, want %d bytes with %s", url, len(r.stdout), sha256Hex(r.stdout), web.Size, web.SHA256)
		}
	}
}

func TestRunDNS(t *testing.T) {
	netlab.RequireBinary(t, "dig")
	netlab.RequireBinary(t, "getent")
	srv := newRunServer(t)
	v4, v6 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")
	netlab.StartDNSMasq(t, srv.ns, []netip.Addr{srv.addr(false), srv.addr(true)}, map[string][]netip.Addr{"web.tungate.test": {v4, v6}})
	for _, dnsArg := range []string{srv.addr(false).String(), "[" + srv.addr(true).String() + "]:53"} {
		cases := []struct {
			cmd  []string
			want string
		}{
			{[]string{"dig", "+short", "+tries=1", "web.tungate.test", "A"}, v4.String()},
			{[]string{"dig", "+short", "+tries=1", "+tcp", "web.tungate.test", "AAAA"}, v6.String()},
			{[]string{"getent", "ahostsv4", "web.tungate.test"}, v4.String()},
			{[]string{"getent", "hosts", "web.tungate.test"}, v6.String()},
		}
		for _, c := range cases {
			r := tungateRun(t, nil, append([]string{"--dns", dnsArg, "--"}, c.cmd...)...).mustSucceed(t, strings.Join(c.cmd, " "))
			if !strings.Contains(r.stdout, c.want) {
				t.Errorf("--dns %s: %s: got %q, want %s", dnsArg, strings.Join(c.cmd, " "), r.stdout, c.want)
			}
		}
	}
}

// TestRunFakeDNS: with a proxy, `tungate run` answers every port-53 flow
// itself with fake addresses, over UDP and TCP, whatever the address asked:
// the proxy (here nothing listens) is never needed for DNS.
func TestRunFakeDNS(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.RequireBinary(t, "dig")
	cases := []struct {
		cmd  []string
		want string
	}{
		{[]string{"dig", "+short", "+tries=1", "web.tungate.test", "A"}, "198.19."},
		{[]string{"dig", "+short", "+tries=1", "+tcp", "web.tungate.test", "AAAA"}, "fd74:6761:7465:fa4e::"},
		{[]string{"dig", "+short", "+tries=1", "@192.0.2.53", "web.tungate.test", "A"}, "198.19."},
		{[]string{"dig", "+short", "+tries=1", "+tcp", "@2001:db8::53", "web.tungate.test", "AAAA"}, "fd74:6761:7465:fa4e::"},
	}
	for _, c := range cases {
		r := tungateRun(t, nil, append([]string{"--proxy", "socks5://127.0.0.1:9", "--"}, c.cmd...)...).mustSucceed(t, strings.Join(c.cmd, " "))
		if !strings.HasPrefix(r.stdout, c.want) {
			t.Errorf("%s: got %q, want an address starting %s", strings.Join(c.cmd, " "), r.stdout, c.want)
		}
	}
}

// TestRunDNSHostLoopback checks that an upstream resolver on the host's
// loopback (as systemd-resolved's 127.0.0.53) works: tungate dials it from
// the host's namespace.
func TestRunDNSHostLoopback(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.RequireBinary(t, "dig")
	netlab.RequireBinary(t, "dnsmasq")
	port := freePort(t)
	dir := t.TempDir()
	dnsmasq := netlab.Root().Start(t, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--bind-interfaces", "--listen-address=127.0.0.1", "--port="+strconv.Itoa(port), "--user=root", "--group=root",
		"--pid-file="+filepath.Join(dir, "pid"), "--address=/loop.tungate.test/192.0.2.77")
	if err := netlab.Root().WaitTCP(fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second); err != nil {
		t.Fatalf("dnsmasq: %v\n%s", err, dnsmasq.Output())
	}
	r := tungateRun(t, nil, "--dns", fmt.Sprintf("127.0.0.1:%d", port), "--", "dig", "+short", "+tries=1", "loop.tungate.test").mustSucceed(t, "dig")
	if strings.TrimSpace(r.stdout) != "192.0.2.77" {
		t.Errorf("dig through a host-loopback resolver: %q", r.stdout)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestRunExitStatus(t *testing.T) {
	netlab.RequireRoot(t)
	for _, tc := range []struct {
		cmd  []string
		want int
	}{
		{[]string{"true"}, 0},
		{[]string{"sh", "-c", "exit 3"}, 3},
		{[]string{"sh", "-c", "kill -TERM $$"}, 128 + 15},
		{[]string{"sh", "-c", "kill -KILL $$"}, 128 + 9},
	} {
		r := tungateRun(t, nil, append([]string{"--"}, tc.cmd...)...)
		if r.code != tc.want {
			t.Errorf("%q: exit status %d, want %d; stderr:\n%s", tc.cmd, r.code, tc.want, r.stderr)
		}
		if r.stderr != "" {
			t.Errorf("%q: tungate wrote to stderr: %q", tc.cmd, r.stderr)
		}
	}
	r := tungateRun(t, nil, "--", "no-such-command-tungate-test")
	if r.code != 127 || !strings.Contains(r.stderr, "tungate: run:") || !strings.Contains(r.stderr, "no-such-command-tungate-test") {
		t.Errorf("missing command: status %d, stderr %q; want 127 and a message", r.code, r.stderr)
	}
}

func TestRunStdinStdout(t *testing.T) {
	netlab.RequireRoot(t)
	data := strings.Repeat("tungate stdin\n", 100000)
	r := tungateRun(t, strings.NewReader(data), "--", "sha256sum").mustSucceed(t, "sha256sum")
	if got := strings.Fields(r.stdout); len(got) == 0 || got[0] != sha256Hex(data) {
		t.Errorf("sha256sum inside: %q, want %s", r.stdout, sha256Hex(data))
	}
	wd := t.TempDir()
	cmd := netlab.TungateCommand(t, context.Background(), "run", "--", "sh", "-c", `pwd; echo "$TUNGATE_TEST_VAR"; cat /etc/resolv.conf`)
	cmd.Dir = wd
	cmd.Env = append(os.Environ(), "TUNGATE_TEST_VAR=kept")
	r = runCmd(t, cmd, nil).mustSucceed(t, "sh")
	for _, want := range []string{wd + "\n", "kept\n", "nameserver 198.18.0.2\n", "nameserver fd74:6761:7465::2\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inside: %q lacks %q", r.stdout, want)
		}
	}
	host, _ := os.ReadFile("/etc/resolv.conf")
	if bytes.Contains(host, []byte("198.18.0.2")) {
		t.Error("the host's /etc/resolv.conf was changed")
	}
}

// --user runs CMD as that user, with that user's HOME, USER and LOGNAME,
// and keeps the rest of the environment.
func TestRunUser(t *testing.T) {
	netlab.RequireRoot(t)
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody here: %v", err)
	}
	cmd := netlab.TungateCommand(t, context.Background(), "run", "--user", "nobody", "--",
		"sh", "-c", `id -u; echo "$HOME $USER $LOGNAME $TUNGATE_TEST_VAR"`)
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "HOME=/root", "USER=root", "LOGNAME=root", "TUNGATE_TEST_VAR=kept")
	r := runCmd(t, cmd, nil).mustSucceed(t, "run --user nobody")
	want := u.Uid + "\n" + u.HomeDir + " nobody nobody kept\n"
	if r.stdout != want {
		t.Errorf("run --user nobody printed %q, want %q", r.stdout, want)
	}
}

func TestRunSignals(t *testing.T) {
	netlab.RequireRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		name := strings.TrimPrefix(unixSignalName(sig), "SIG")
		script := fmt.Sprintf(`trap 'echo got-%s; exit 7' %s; echo ready; sleep 60 & wait`, name, name)
		cmd := netlab.TungateCommand(t, context.Background(), "run", "--", "sh", "-c", script)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		if !lines.Scan() || lines.Text() != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("%s: no ready line: %q %s", name, lines.Text(), stderr.String())
		}
		cmd.Process.Signal(sig)
		var rest []string
		for lines.Scan() {
			rest = append(rest, lines.Text())
		}
		cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != 7 || !slicesContains(rest, "got-"+name) {
			t.Errorf("%s: exit status %d, output %q; want 7 and got-%s", name, code, rest, name)
		}
	}
}

func unixSignalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return s.String()
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

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
	script, err := filepath.Abs("testdata/craft_syn.py")
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

func TestRunPublish(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.RequireBinary(t, "socat")
	tcpPort, tcp6Port, udpPort := freePort(t), freePort(t), freePort(t)
	// The servers echo; the final cat holds CMD open until the test closes
	// its stdin, and the socats left behind must be cleaned up after. The
	// server on 8081 listens on IPv6 only, so it is reached at the
	// namespace's IPv6 address once the IPv4 one refuses.
	script := `socat TCP-LISTEN:8080,reuseaddr,fork EXEC:cat & socat TCP6-LISTEN:8081,ipv6only=1,reuseaddr,fork EXEC:cat & ` +
		`socat UDP-RECVFROM:5353,fork EXEC:cat & cat`
	cmd := netlab.TungateCommand(t, context.Background(), "run",
		"-p", fmt.Sprintf("127.0.0.1:%d:8080", tcpPort), "-p", fmt.Sprintf("127.0.0.1:%d:8081", tcp6Port),
		"--publish", fmt.Sprintf("%d:5353/udp", udpPort),
		"--", "sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("tungate run: exit status %d\n%s", code, stderr.String())
		}
	}()
	if got := retryEcho(t, "tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort), "published tcp"); got != "published tcp" {
		t.Errorf("published TCP port echoed %q", got)
	}
	if got := retryEcho(t, "tcp", fmt.Sprintf("127.0.0.1:%d", tcp6Port), "published tcp6"); got != "published tcp6" {
		t.Errorf("published TCP port of an IPv6-only server echoed %q", got)
	}
	for _, host := range []string{"127.0.0.1", "[::1]"} {
		if got := retryEcho(t, "udp", fmt.Sprintf("%s:%d", host, udpPort), "published udp"); got != "published udp" {
			t.Errorf("published UDP port via %s echoed %q", host, got)
		}
	}
}

// retryEcho sends msg to addr and returns what comes back, retrying while
// the server inside starts.
func retryEcho(t *testing.T, network, addr, msg string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := echoOnce(network, addr, msg)
		if err == nil || time.Now().After(deadline) {
			if err != nil {
				t.Errorf("%s %s: %v", network, addr, err)
			}
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func echoOnce(network, addr, msg string) (string, error) {
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 100)
	n, err := io.ReadAtLeast(c, buf, len(msg))
	return string(buf[:n]), err
}

func TestRunRootless(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.RequireBinary(t, "curl")
	netlab.RequireBinary(t, "setpriv")
	netlab.RequireBinary(t, "unshare")
	for _, knob := range []struct{ path, off string }{
		{"/proc/sys/kernel/unprivileged_userns_clone", "0"},
		{"/proc/sys/user/max_user_namespaces", "0"},
		{"/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"},
	} {
		if b, err := os.ReadFile(knob.path); err == nil && strings.TrimSpace(string(b)) == knob.off {
			t.Skipf("this machine forbids unprivileged user namespaces (%s is %s)", knob.path, knob.off)
		}
	}
	srv := newRunServer(t)
	web := netlab.StartNginx(t, srv.ns, 4<<20)
	url := "http://" + netip.AddrPortFrom(srv.addr(false), netlab.NginxPort).String() + web.Path
	const nobody = "65534"
	tg := netlab.TungatePath(t)
	// --pcap works rootless too, into a directory the user may write.
	pcapDir, err := os.MkdirTemp("", "tungate-rootless-")
	if err != nil || os.Chmod(pcapDir, 0o777) != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pcapDir) })
	pcap := filepath.Join(pcapDir, "rootless.pcap")
	asNobody := []string{"setpriv", "--reuid=" + nobody, "--regid=" + nobody, "--clear-groups", tg, "run", "--pcap", pcap, "--"}

	// /dev/net/tun is 0600 here. Rather than chmod the host's node, which
	// other tests check permission errors on, a private mount namespace
	// covers it with a 0666 node for this test only.
	dir := t.TempDir()
	wrap := fmt.Sprintf(`set -e; mount -t tmpfs tungate-test %[1]s; mknod -m 0666 %[1]s/tun c 10 200; mount --bind %[1]s/tun /dev/net/tun; exec "$@"`, dir)
	script := `id -u; curl -sS --fail --max-time 30 "$1" | sha256sum; grep CapEff /proc/self/status`
	cmd := exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", wrap, "sh"},
		append(asNobody, "sh", "-c", script, "sh", url)...)...)
	cmd.Dir = "/"
	r := runCmd(t, cmd, nil)
	if r.code != 0 && strings.Contains(r.stderr, "user namespace") {
		t.Skipf("rootless path unavailable here: %s", r.stderr)
	}
	r.mustSucceed(t, "rootless tungate run")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || lines[0] != nobody || !strings.HasPrefix(lines[1], web.SHA256) || !strings.HasSuffix(lines[2], "0000000000000000") {
		t.Errorf("rootless run printed %q; want uid %s, sha256 %s, no capabilities", lines, nobody, web.SHA256)
	}
	if out, err := exec.Command("tcpdump", "-r", pcap, "-nn", "tcp[tcpflags] == tcp-syn").Output(); err != nil || !strings.Contains(string(out), "Flags [S]") {
		t.Errorf("the rootless run's pcap: %v\n%s", err, out)
	}

	// Without access to /dev/net/tun, the error says what is missing.
	cmd = exec.Command(asNobody[0], append(asNobody[1:], "true")...)
	cmd.Dir = "/"
	if fi, err := os.Stat("/dev/net/tun"); err != nil || fi.Mode().Perm()&0o006 == 0o006 {
		t.Logf("skipping the permission check: /dev/net/tun is usable by everyone here")
		return
	}
	r = runCmd(t, cmd, nil)
	if r.code != 1 || !strings.Contains(r.stderr, "/dev/net/tun") || !strings.Contains(r.stderr, "0666") {
		t.Errorf("rootless without /dev/net/tun access: status %d, stderr %q", r.code, r.stderr)
	}
}

// nsProcesses lists the processes whose network namespace has this inode.
func nsProcesses(ino string) []string {
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if link, err := os.Readlink("/proc/" + e.Name() + "/ns/net"); err == nil && link == ino {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

func TestRunLeavesNothing(t *testing.T) {
	netlab.RequireRoot(t)
	tmp := t.TempDir()
	before, _ := os.ReadFile("/proc/self/mountinfo")
	// CMD starts a background process, reports it, and dies of SIGKILL.
	cmd := netlab.TungateCommand(t, context.Background(), "run", "--", "sh", "-c",
		`sleep 300 & echo $!; readlink /proc/self/ns/net; kill -KILL $$`)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r := runCmd(t, cmd, nil)
	if r.code != 137 {
		t.Errorf("exit status %d, want 137", r.code)
	}
	out := strings.Fields(r.stdout)
	if len(out) != 2 {
		t.Fatalf("output %q", r.stdout)
	}
	if left := nsProcesses(out[1]); len(left) > 0 {
		t.Errorf("processes left in the namespace: %v", left)
	}
	if err := syscall.Kill(atoi(t, out[0]), 0); err == nil && !zombie(out[0]) {
		t.Errorf("background process %s still runs", out[0])
	}
	if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
		t.Errorf("files left in TMPDIR: %v", ents)
	}
	after, _ := os.ReadFile("/proc/self/mountinfo")
	// Other tests add and remove their own namespace mounts meanwhile, so
	// only new mounts that are ours count: the namespace, or a resolv.conf.
	for _, line := range strings.Split(string(after), "\n") {
		ours := strings.Contains(line, out[1]) || strings.Contains(line, "resolv.conf")
		if ours && !bytes.Contains(before, []byte(line)) {
			t.Errorf("mount left behind: %s", line)
		}
	}

	// tungate itself killed: CMD dies with it.
	cmd = netlab.TungateCommand(t, context.Background(), "run", "--", "sh", "-c", `echo $$; readlink /proc/self/ns/net; exec sleep 300`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var lines []string
	for len(lines) < 2 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	cmd.Process.Kill()
	cmd.Wait()
	if len(lines) != 2 {
		t.Fatalf("output %q", lines)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(nsProcesses(lines[1])) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := nsProcesses(lines[1]); len(left) > 0 {
		t.Errorf("after SIGKILL of tungate, processes left in the namespace: %v", left)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func zombie(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

func TestRunNetnsPath(t *testing.T) {
	netlab.RequireBinary(t, "curl")
	srv := newRunServer(t)
	web := netlab.StartNginx(t, srv.ns, 1<<20)
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		t.Fatal(err)
	}
	name := netlab.UniqueName("tgkeep")
	path := "/run/netns/" + name
	g := netlab.StartTungate(t, "run", "--log-level", "info", "--netns-path", path)
	url := "http://" + netip.AddrPortFrom(srv.addr(true), netlab.NginxPort).String() + web.Path
	body := netlab.Root().MustRun(t, "ip", "netns", "exec", name, "curl", "-sS", "--fail", "--max-time", "30", url)
	if sha256Hex(body) != web.SHA256 {
		t.Errorf("download through the kept namespace: sha256 %s, want %s", sha256Hex(body), web.SHA256)
	}
	g.Stop()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still exists after tungate stopped: %v", path, err)
	}
}

// BenchmarkRunStartup measures `tungate run -- true` from start to exit
// (go test -run '^$' -bench RunStartup ./cmd/tungate).
func BenchmarkRunStartup(b *testing.B) {
	netlab.RequireRoot(b)
	bin := netlab.TungatePath(b)
	for b.Loop() {
		if out, err := exec.Command(bin, "run", "--", "true").CombinedOutput(); err != nil {
			b.Fatalf("tungate run -- true: %v\n%s", err, out)
		}
	}
}
