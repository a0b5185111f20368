package main_test

// End-to-end tests of `tungate run --publish`.

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

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
	r := startHeldRun(t, "run",
		"-p", fmt.Sprintf("127.0.0.1:%d:8080", tcpPort), "-p", fmt.Sprintf("127.0.0.1:%d:8081", tcp6Port),
		"--publish", fmt.Sprintf("%d:5353/udp", udpPort),
		"--", "sh", "-c", script)
	defer func() {
		if code := r.stop(); code != 0 {
			t.Errorf("tungate run: exit status %d\n%s", code, r.stderr.String())
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

// heldRun is a `tungate run` whose CMD lives until its standard input
// closes, in a process group of its own.
type heldRun struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr strings.Builder
}

// startHeldRun starts tungate with args (from "run" on).
func startHeldRun(t *testing.T, args ...string) *heldRun {
	t.Helper()
	r := &heldRun{cmd: netlab.TungateCommand(t, context.Background(), args...)}
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var err error
	if r.stdin, err = r.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	r.cmd.Stderr = &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return r
}

// stop closes CMD's input, waits for tungate and returns its exit status.
func (r *heldRun) stop() int {
	r.stdin.Close()
	r.cmd.Wait()
	return r.cmd.ProcessState.ExitCode()
}
