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
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"strings"
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
	return s.net.Addr(2, v6)
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
