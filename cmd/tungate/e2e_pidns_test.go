package main_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// descendants lists the live processes below pid, as /proc shows them now.
func descendants(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		parent[p], _ = strconv.Atoi(f[1])
	}
	var out []int
	for p := range parent {
		for a := parent[p]; a > 1; a = parent[a] {
			if a == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// cmdline is the process's command line with spaces between arguments, ""
// once it has gone (or is a zombie).
func cmdline(pid int) string {
	if zombie(strconv.Itoa(pid)) {
		return ""
	}
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

// TestRunKillTakesTree kills tungate with SIGKILL while CMD's children run
// in the background: none of them may survive it.
func TestRunKillTakesTree(t *testing.T) {
	netlab.RequireRoot(t)
	// --control none: a SIGKILLed instance cannot remove its socket, and
	// run-PID.sock names are never reused.
	tg := netlab.Root().Start(t, netlab.TungatePath(t), "run", "--control", "none", "--", "sh", "-c", "sleep 100 & sleep 100 & echo started; wait")
	if err := tg.WaitOutput("started", 10*time.Second); err != nil {
		t.Fatalf("tungate run: %v\n%s", err, tg.Output())
	}
	// The forked children may not have exec'd sleep yet when sh echoes.
	var sleeps []int
	for wait := time.Now().Add(5 * time.Second); len(sleeps) != 2 && time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
		sleeps = sleeps[:0]
		for _, p := range descendants(tg.Pid()) {
			if cmdline(p) == "sleep 100" {
				sleeps = append(sleeps, p)
			}
		}
	}
	if len(sleeps) != 2 {
		t.Fatalf("found %d sleep processes below tungate (pid %d), want 2", len(sleeps), tg.Pid())
	}
	killed := time.Now()
	syscall.Kill(tg.Pid(), syscall.SIGKILL)
	<-tg.Done()
	deadline := killed.Add(time.Second)
	for {
		var left []int
		for _, p := range sleeps {
			if cmdline(p) == "sleep 100" {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			t.Logf("every descendant gone %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("1 s after SIGKILL of tungate, sleep processes still run: %v", left)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunPIDNamespace checks that CMD sees its own PID namespace: PID 1
// is tungate's init, and /proc lists only the namespace's processes.
func TestRunPIDNamespace(t *testing.T) {
	netlab.RequireRoot(t)
	r := tungateRun(t, nil, "--", "sh", "-c", `tr '\0' ' ' </proc/1/cmdline; echo; ls /proc | grep -c '^[0-9]'`).mustSucceed(t, "sh")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	// init, sh, ls and grep.
	if len(lines) != 2 || !strings.Contains(lines[0], "run --internal-namespace-setup") || atoi(t, lines[1]) > 4 {
		t.Errorf("inside: PID 1 and process count %q, want tungate and at most 4", lines)
	}
}

// TestRunNetnsPathLeftBehind kills `run --netns-path` with SIGKILL, which
// leaves the bind mount behind; the next start with the same path removes
// it, says so once, and serves a new namespace there.
func TestRunNetnsPathLeftBehind(t *testing.T) {
	netlab.RequireRoot(t)
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		t.Fatal(err)
	}
	path := "/run/netns/" + netlab.UniqueName("tgleft")
	netlab.CleanEtcNetNS(t, filepath.Base(path))
	t.Cleanup(func() {
		syscall.Unmount(path, syscall.MNT_DETACH)
		os.Remove(path)
	})
	first := netlab.Root().Start(t, netlab.TungatePath(t), "run", "--log-level", "info", "--netns-path", path)
	if err := first.WaitOutput("msg=serving", 10*time.Second); err != nil {
		t.Fatalf("tungate did not start: %v\n%s", err, first.Output())
	}
	syscall.Kill(first.Pid(), syscall.SIGKILL)
	<-first.Done()
	var fs syscall.Statfs_t
	if err := syscall.Statfs(path, &fs); err != nil || fs.Type != 0x6e736673 {
		t.Fatalf("after kill -9, %s is no namespace mount (%v, type %#x): nothing to test", path, err, fs.Type)
	}

	second := netlab.StartTungate(t, "run", "--log-level", "info", "--netns-path", path)
	if err := second.WaitOutput("msg=serving", 10*time.Second); err != nil {
		t.Fatalf("tungate did not start over what the killed one left: %v\n%s", err, second.Output())
	}
	if n := strings.Count(second.Output(), "left at --netns-path"); n != 1 {
		t.Errorf("%d log lines about the namespace left behind, want 1:\n%s", n, second.Output())
	}
	// The namespace there is the new one: its device serves.
	out := netlab.Root().MustRun(t, "ip", "netns", "exec", filepath.Base(path), "ip", "-o", "link", "show", "tun0")
	if !strings.Contains(out, "tun0") {
		t.Errorf("no tun0 in the namespace at %s: %s", path, out)
	}
	second.Stop()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still exists after tungate stopped: %v", path, err)
	}

	// A namespace still in use (a process in it) is refused, not taken.
	third := netlab.StartTungate(t, "run", "--log-level", "info", "--netns-path", path)
	if err := third.WaitOutput("msg=serving", 10*time.Second); err != nil {
		t.Fatalf("tungate did not start: %v\n%s", err, third.Output())
	}
	r := runCmd(t, netlab.TungateCommand(t, context.Background(), "run", "--netns-path", path), nil)
	if r.code == 0 || !strings.Contains(r.stderr, "live processes") {
		t.Errorf("second tungate on a path in use: status %d, stderr %q; want a failure naming the live processes", r.code, r.stderr)
	}
}
