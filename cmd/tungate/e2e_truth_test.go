package main_test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// TestRunSysfs checks that sysfs inside `tungate run` describes the new
// network namespace.
func TestRunSysfs(t *testing.T) {
	netlab.RequireRoot(t)
	r := tungateRun(t, nil, "--", "ls", "/sys/class/net").mustSucceed(t, "ls /sys/class/net")
	if got := strings.Fields(r.stdout); len(got) != 2 || got[0] != "lo" || got[1] != "tun0" {
		t.Errorf("ls /sys/class/net inside: %q, want lo and tun0 only", got)
	}
}

// hostsName returns a name and address from the host's /etc/hosts.
func hostsName(t *testing.T) (name, addr string) {
	f, err := os.Open("/etc/hosts")
	if err != nil {
		t.Skipf("no /etc/hosts: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if f := strings.Fields(line); len(f) >= 2 {
			name, addr = f[len(f)-1], f[0]
		}
	}
	if name == "" {
		t.Skip("/etc/hosts names nothing")
	}
	return name, addr
}

// TestRunResolverOnly checks that names inside resolve through the
// namespace's resolver only: nsswitch.conf says "hosts: files dns" (the
// host's file unchanged), /etc/hosts still answers, and a socket at nscd's
// path on the host cannot be reached.
func TestRunResolverOnly(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.RequireBinary(t, "socat")
	netlab.RequireBinary(t, "getent")
	hostNSS, _ := os.ReadFile("/etc/nsswitch.conf")
	name, addr := hostsName(t)

	// Only where nscd is not installed: the test must not stand in front
	// of a real one. glibc on the host may ask this socket meanwhile; it
	// closes every connection at once, after which glibc asks NSS itself.
	const nscdDir = "/run/nscd"
	sock := ""
	if _, err := os.Lstat(nscdDir); os.IsNotExist(err) {
		if err := os.Mkdir(nscdDir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(nscdDir) })
		sock = nscdDir + "/socket"
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	} else {
		t.Logf("%s exists here: not checking that nscd's socket is hidden", nscdDir)
	}

	script := `grep '^hosts' /etc/nsswitch.conf; getent hosts "$1"; ls -A /run/nscd 2>&1 | wc -l`
	if sock != "" {
		script += `; socat -u OPEN:/dev/null UNIX-CONNECT:` + sock + ` 2>/dev/null && echo reached || echo unreachable`
	}
	r := tungateRun(t, nil, "--", "sh", "-c", script, "sh", name).mustSucceed(t, "sh")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	want := 3
	if sock != "" {
		want = 4
	}
	if len(lines) != want {
		t.Fatalf("inside printed %q", lines)
	}
	if lines[0] != "hosts: files dns" {
		t.Errorf("nsswitch.conf inside: %q, want hosts: files dns", lines[0])
	}
	if f := strings.Fields(lines[1]); len(f) < 2 || f[0] != addr {
		t.Errorf("getent hosts %s inside: %q, want %s from /etc/hosts", name, lines[1], addr)
	}
	if sock != "" {
		if lines[2] != "0" || lines[3] != "unreachable" {
			t.Errorf("inside, /run/nscd has %s entries and its socket is %s; want 0 and unreachable", lines[2], lines[3])
		}
		// The socket works on the host: the test would notice nothing
		// otherwise.
		if out, err := exec.Command("socat", "-u", "OPEN:/dev/null", "UNIX-CONNECT:"+sock).CombinedOutput(); err != nil {
			t.Errorf("the test's nscd socket does not work on the host: %v %s", err, out)
		}
	}
	if now, _ := os.ReadFile("/etc/nsswitch.conf"); string(now) != string(hostNSS) {
		t.Error("the host's /etc/nsswitch.conf was changed")
	}
}
