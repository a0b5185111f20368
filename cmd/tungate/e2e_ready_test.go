package main_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// deviceState reports how the device looks in netns (a name under
// /run/netns) right now: an error unless it exists, is up and has the
// default IPv4 address and, if routes, the default route.
func deviceState(netns, dev string, routes bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "-n", netns, "-o", "addr", "show", "dev", dev, "up").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "198.18.0.1/24") {
		return fmt.Errorf("device %s in %s: %v: %q", dev, netns, err, out)
	}
	if !routes {
		return nil
	}
	out, err = exec.CommandContext(ctx, "ip", "-n", netns, "route", "show", "default").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "dev "+dev) {
		return fmt.Errorf("default route via %s in %s: %v: %q", dev, netns, err, out)
	}
	return nil
}

// TestReadyNotifySocket: with NOTIFY_SOCKET set (a path, or an @abstract
// name), tungate sends READY=1 once the device is up with its addresses
// and routes, and STOPPING=1 when it stops.
func TestReadyNotifySocket(t *testing.T) {
	if kernelMode() {
		t.Skip("tests tungate itself; TUNGATE_E2E_GATEWAY=kernel")
	}
	netlab.RequireRoot(t)
	for _, abstract := range []bool{false, true} {
		t.Run(fmt.Sprintf("abstract=%v", abstract), func(t *testing.T) {
			t.Parallel()
			name := filepath.Join(t.TempDir(), "notify")
			if abstract {
				name = "@" + netlab.UniqueName("tgnotify")
			}
			sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer sock.Close()
			app := netlab.NewNS(t, "tgr")
			dev := netlab.UniqueName("tg")
			states := make(chan string, 4)
			go func() {
				buf := make([]byte, 256)
				for {
					sock.SetReadDeadline(time.Now().Add(30 * time.Second))
					n, err := sock.Read(buf)
					if err != nil {
						close(states)
						return
					}
					msg := string(buf[:n])
					if msg == "READY=1" {
						if err := deviceState(app.Name, dev, true); err != nil {
							msg += " before the device was ready: " + err.Error()
						}
					}
					states <- msg
				}
			}()
			cmd := netlab.TungateCommand(t, context.Background(), "--netns", app.Name, "--device", "tun://"+dev)
			cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+name)
			gw := netlab.StartTungateCommand(t, cmd)
			wantState(t, states, "READY=1")
			gw.Stop()
			wantState(t, states, "STOPPING=1")
		})
	}
}

func wantState(t *testing.T, states <-chan string, want string) {
	t.Helper()
	select {
	case got := <-states:
		if got != want {
			t.Fatalf("notify socket got %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s on the notify socket after 10s", want)
	}
}

// TestReadyFD: --ready-fd N gets one line and is closed once the device is
// ready, in the gateway and in `tungate run --netns-path` (where it comes
// once the namespace is served and bind-mounted, as it does before CMD
// starts when there is a command). A descriptor that is not open is a usage
// error.
func TestReadyFD(t *testing.T) {
	if kernelMode() {
		t.Skip("tests tungate itself; TUNGATE_E2E_GATEWAY=kernel")
	}
	netlab.RequireRoot(t)
	t.Run("gateway", func(t *testing.T) {
		t.Parallel()
		app := netlab.NewNS(t, "tgr")
		dev := netlab.UniqueName("tg")
		testReadyFD(t, app.Name, dev, true, "--netns", app.Name, "--device", "tun://"+dev)
	})
	t.Run("gateway no routes", func(t *testing.T) {
		t.Parallel()
		app := netlab.NewNS(t, "tgr")
		dev := netlab.UniqueName("tg")
		testReadyFD(t, app.Name, dev, false, "--netns", app.Name, "--device", "tun://"+dev, "--no-routes")
	})
	t.Run("run", func(t *testing.T) {
		t.Parallel()
		if err := os.MkdirAll("/run/netns", 0o755); err != nil {
			t.Fatal(err)
		}
		name := netlab.UniqueName("tgrk")
		testReadyFD(t, name, "tun0", true, "run", "--netns-path", "/run/netns/"+name)
	})
	t.Run("not open", func(t *testing.T) {
		t.Parallel()
		out, err := exec.Command(netlab.TungatePath(t), "--ready-fd", "9", "--device", "tun://"+netlab.UniqueName("tg")).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != wantExitUsage || !strings.Contains(string(out), "--ready-fd 9") {
			t.Fatalf("--ready-fd 9 with fd 9 closed: %v, want exit %d naming --ready-fd 9: %s", err, wantExitUsage, out)
		}
	})
}

// testReadyFD starts tungate with args and --ready-fd 3 on a pipe and
// checks that "ready" arrives, then EOF, with the device ready by then.
func testReadyFD(t *testing.T, netns, dev string, routes bool, args ...string) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := netlab.TungateCommand(t, context.Background(), append(args, "--ready-fd", "3", "--log-level", "info")...)
	cmd.ExtraFiles = []*os.File{w}
	type result struct {
		lines []string
		err   error // of the device check when the line came
	}
	done := make(chan result, 1)
	go func() {
		var res result
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			res.lines = append(res.lines, sc.Text())
			if len(res.lines) == 1 {
				res.err = deviceState(netns, dev, routes)
			}
		}
		done <- res
	}()
	netlab.StartTungateCommand(t, cmd)
	w.Close() // ours; tungate holds its own copy until it is ready
	select {
	case res := <-done:
		if len(res.lines) != 1 || res.lines[0] != "ready" {
			t.Fatalf("--ready-fd got %q, want one line \"ready\" and EOF", res.lines)
		}
		if res.err != nil {
			t.Fatalf("ready before the device was: %v", res.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--ready-fd: no line and EOF after 10s")
	}
}
