package main_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// The capability sets tungate keeps after set-up, as /proc/PID/status
// shows them (README, "Containment").
const (
	capsGateway     = "0000000000003000" // net_admin, net_raw
	capsRun         = "0000000000002000" // net_raw
	capsRunNetnsDir = "0000000000282020" // kill, net_raw, sys_ptrace, sys_admin
)

// checkDropped fails unless every thread of pid has exactly want as its
// permitted, effective and bounding sets, nothing inheritable or ambient,
// no_new_privs set and the seccomp filter (README, "Least privilege").
func checkDropped(t *testing.T, pid int, want string) {
	t.Helper()
	checkStatus(t, pid, map[string]string{"CapPrm": want, "CapEff": want, "CapBnd": want,
		"CapInh": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1",
		"Seccomp": "2", "Seccomp_filters": "1"})
}

// checkStatus fails unless every thread of pid has the wanted values in
// /proc/PID/task/TID/status.
func checkStatus(t *testing.T, pid int, wantLines map[string]string) {
	t.Helper()
	tasks, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "status"))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("no threads of pid %d: %v", pid, err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			continue // the thread ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			if w, ok := wantLines[k]; ok && strings.TrimSpace(v) != w {
				t.Errorf("%s: %s %s, want %s", task, k, strings.TrimSpace(v), w)
			}
		}
	}
}

// TestGatewayDropsCapabilities checks the gateway's capabilities while it
// serves a device that existed before it (so that its clean-up at exit
// has work to do: the addresses and routes it added), and that the
// clean-up still works with them.
func TestGatewayDropsCapabilities(t *testing.T) {
	netlab.RequireRoot(t)
	app := netlab.NewNS(t, "tga")
	dev := netlab.UniqueName("tg")
	app.MustRun(t, "ip", "tuntap", "add", "dev", dev, "mode", "tun")
	gw := netlab.StartTungate(t, "--netns", app.Name, "--device", "tun://"+dev, "--log-level", "debug")
	if err := gw.WaitOutput("msg=serving", 10*time.Second); err != nil {
		t.Fatalf("tungate did not start: %v\n%s", err, gw.Output())
	}
	checkDropped(t, gw.Pid(), capsGateway)
	for _, line := range []string{"cap_eff=" + capsGateway, `msg="seccomp filter installed" mode=enforce`} {
		if !strings.Contains(gw.Output(), line) {
			t.Errorf("no debug line with %s:\n%s", line, gw.Output())
		}
	}
	if before := app.MustRun(t, "ip", "addr", "show", "dev", dev); !strings.Contains(before, "198.18.") {
		t.Fatalf("tungate added no address to %s: %s", dev, before)
	}
	gw.Stop()
	if after := app.MustRun(t, "ip", "addr", "show", "dev", dev); strings.Contains(after, "198.18.") {
		t.Errorf("after exit, the addresses tungate added are still on %s: %s", dev, after)
	}
	if strings.Contains(gw.Output(), "level=WARN") || strings.Contains(gw.Output(), "level=ERROR") {
		t.Errorf("tungate warned:\n%s", gw.Output())
	}
}

// TestRunDropsCapabilities checks tungate's capabilities under `run` and
// `run --netns-path`, and that CMD under --user has none at all.
func TestRunDropsCapabilities(t *testing.T) {
	netlab.RequireRoot(t)
	tg := netlab.Root().Start(t, netlab.TungatePath(t), "run", "--", "sh", "-c", "echo ready; sleep 100")
	if err := tg.WaitOutput("ready", 10*time.Second); err != nil {
		t.Fatalf("tungate run: %v\n%s", err, tg.Output())
	}
	checkDropped(t, tg.Pid(), capsRun)

	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		t.Fatal(err)
	}
	path := "/run/netns/" + netlab.UniqueName("tgcaps")
	netlab.CleanEtcNetNS(t, filepath.Base(path))
	kept := netlab.StartTungate(t, "run", "--log-level", "info", "--netns-path", path)
	if err := kept.WaitOutput("msg=serving", 10*time.Second); err != nil {
		t.Fatalf("tungate run --netns-path: %v\n%s", err, kept.Output())
	}
	checkDropped(t, kept.Pid(), capsRunNetnsDir)
	kept.Stop()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still exists after tungate stopped: %v", path, err)
	}

	r := tungateRun(t, nil, "--user", "nobody", "--", "grep", "-E", "^(Cap|NoNewPrivs|Seccomp)", "/proc/self/status").mustSucceed(t, "run --user nobody")
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if v = strings.TrimSpace(v); strings.HasPrefix(k, "Cap") && v != "0000000000000000" {
			t.Errorf("CMD under --user: %s %s, want none", k, v)
		}
		// CMD was forked before the filter: it must not inherit it.
		if strings.HasPrefix(k, "Seccomp") && v != "0" {
			t.Errorf("CMD under --user: %s %s, want no seccomp filter", k, v)
		}
	}
}

// TestSeccompOff checks that --seccomp=false installs no filter, and that
// CMD under `tungate run` never gets tungate's, whether it is on or off.
func TestSeccompOff(t *testing.T) {
	netlab.RequireRoot(t)
	for _, seccomp := range []string{"--seccomp=true", "--seccomp=false"} {
		tg := netlab.Root().Start(t, netlab.TungatePath(t), "run", "--log-level", "debug", seccomp, "--",
			"sh", "-c", "grep ^Seccomp: /proc/self/status; echo ready; sleep 100")
		if err := tg.WaitOutput("ready", 10*time.Second); err != nil {
			t.Fatalf("tungate run %s: %v\n%s", seccomp, err, tg.Output())
		}
		out := tg.Output()
		if !strings.Contains(out, "Seccomp:\t0") {
			t.Errorf("run %s: CMD has a seccomp filter:\n%s", seccomp, out)
		}
		want, line := "2", `msg="seccomp filter installed"`
		if seccomp == "--seccomp=false" {
			want, line = "0", `msg="seccomp filter off (--seccomp=false)"`
		}
		checkStatus(t, tg.Pid(), map[string]string{"Seccomp": want})
		if !strings.Contains(out, line) {
			t.Errorf("run %s: no debug line %s:\n%s", seccomp, line, out)
		}
	}
}
