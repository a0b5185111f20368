package main_test

// End-to-end tests of the namespace `tungate run` makes: rootless, kept
// with --netns-path, and gone without a trace afterwards.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

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
	// out[0] is the background process's PID inside CMD's PID namespace,
	// which names another process here; the check above covers it.
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
	netlab.CleanEtcNetNS(t, name)
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
