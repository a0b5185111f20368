package main_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// Exit codes of the command-line contract.
const (
	wantExitRuntime = 1
	wantExitUsage   = 2
)

// TestCLIErrors runs the built binary with bad input and checks the exit code
// and the one-line "tungate: " message naming what was wrong.
func TestCLIErrors(t *testing.T) {
	t.Parallel()
	if kernelMode() {
		t.Skip("tests tungate itself; TUNGATE_E2E_GATEWAY=kernel")
	}
	netlab.RequireRoot(t)
	missingNS := netlab.UniqueName("nons")
	tests := []struct {
		name string
		args []string
		// setup prepares the command and may return extra args.
		setup    func(t *testing.T, cmd *exec.Cmd) []string
		wantCode int // -1: any non-zero
		// wantAny: the message contains at least one of these (case-insensitive).
		wantAny []string
	}{
		{name: "unknown flag", args: []string{"--no-such-flag"}, wantCode: wantExitUsage, wantAny: []string{"--no-such-flag", "no-such-flag"}},
		{name: "mtu not a number", args: []string{"--mtu", "abc"}, wantCode: wantExitUsage, wantAny: []string{"--mtu"}},
		{name: "address without prefix length", args: []string{"--address", "10.0.0.1"}, wantCode: wantExitUsage, wantAny: []string{"--address"}},
		{name: "address not an address", args: []string{"--address", "nonsense/24"}, wantCode: wantExitUsage, wantAny: []string{"--address"}},
		{name: "device bogus scheme", args: []string{"--device", "bogus://x"}, wantCode: wantExitUsage, wantAny: []string{"--device"}},
		{name: "missing netns", args: []string{"--netns", missingNS, "--device", "tun://" + netlab.UniqueName("tg")}, wantCode: wantExitRuntime, wantAny: []string{missingNS}},
		{name: "netns path of no process", args: []string{"--netns", "/proc/999999/ns/net", "--device", "tun://" + netlab.UniqueName("tg")}, wantCode: wantExitRuntime, wantAny: []string{"no process 999999"}},
		{
			name: "default route clash",
			setup: func(t *testing.T, cmd *exec.Cmd) []string {
				ns := netlab.NewNS(t, "tgc")
				name := netlab.UniqueName("vt")
				ns.MustRun(t, "ip", "link", "add", name, "type", "veth", "peer", "name", netlab.UniqueName("vt"))
				ns.MustRun(t, "ip", "link", "set", name, "up")
				ns.MustRun(t, "ip", "route", "add", "default", "dev", name)
				return []string{"--netns", ns.Name, "--device", "tun://" + netlab.UniqueName("tg")}
			},
			wantCode: wantExitRuntime,
			wantAny:  []string{"--no-routes"},
		},
		{
			name: "rootless run --netns-path",
			setup: func(t *testing.T, cmd *exec.Cmd) []string {
				cmd.Dir = "/"
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
				return []string{"run", "--netns-path", "/tmp/" + netlab.UniqueName("tgk")}
			},
			wantCode: wantExitUsage,
			wantAny:  []string{"--netns-path needs root"},
		},
		{
			name: "fd not a TUN",
			setup: func(t *testing.T, cmd *exec.Cmd) []string {
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close(); w.Close() })
				cmd.ExtraFiles = []*os.File{r} // fd 3 in the child
				return []string{"--device", "fd://3"}
			},
			wantCode: wantExitRuntime,
			wantAny:  []string{"not a TUN"},
		},
		{
			name: "device name taken by a non-TUN link",
			setup: func(t *testing.T, cmd *exec.Cmd) []string {
				ns := netlab.NewNS(t, "tgc")
				// A veth end: this kernel may lack the dummy module.
				name := netlab.UniqueName("vt")
				ns.MustRun(t, "ip", "link", "add", name, "type", "veth", "peer", "name", netlab.UniqueName("vt"))
				return []string{"--netns", ns.Name, "--device", "tun://" + name}
			},
			wantCode: wantExitRuntime,
			wantAny:  []string{"tun://", "in use", "exists", "not a TUN"},
		},
		{
			name: "no permission",
			setup: func(t *testing.T, cmd *exec.Cmd) []string {
				cmd.Dir = "/"
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
				return []string{"--device", "tun://" + netlab.UniqueName("tg")}
			},
			wantCode: -1,
			wantAny:  []string{"root", "CAP_NET_ADMIN"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := netlab.TungateCommand(t, ctx)
			// If it wrongly starts serving, stop it the way that cleans up.
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
			cmd.WaitDelay = 3 * time.Second
			args := tc.args
			if tc.setup != nil {
				args = append(args, tc.setup(t, cmd)...)
			}
			cmd.Args = append(cmd.Args, args...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("tungate %s still running after 10 s; stderr:\n%s", strings.Join(args, " "), stderr.String())
			}
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) {
				t.Fatalf("tungate %s: want a non-zero exit, got %v; stderr:\n%s", strings.Join(args, " "), err, stderr.String())
			}
			code := exitErr.ExitCode()
			msg := strings.TrimSpace(stderr.String())
			if tc.wantCode >= 0 && code != tc.wantCode {
				t.Errorf("tungate %s: exit code %d, want %d", strings.Join(args, " "), code, tc.wantCode)
			}
			if !strings.HasPrefix(msg, "tungate: ") || strings.Contains(msg, "\n") {
				t.Errorf("tungate %s: want one line starting with \"tungate: \" on stderr, got:\n%s", strings.Join(args, " "), msg)
			}
			t.Logf("exit %d: %s", code, msg)
			if !containsAnyFold(msg, tc.wantAny) {
				t.Errorf("tungate %s: message %q mentions none of %q", strings.Join(args, " "), msg, tc.wantAny)
			}
		})
	}
}

func containsAnyFold(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(strings.ToLower(s), strings.ToLower(sub)) {
			return true
		}
	}
	return false
}
