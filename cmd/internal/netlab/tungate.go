package netlab

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

// Limits of the tungate contract that StartTungate checks.
const (
	// ServingTimeout is how long tungate may take to log msg=serving.
	ServingTimeout = 10 * time.Second
	// StopTimeout is how long tungate may take to exit after SIGTERM.
	StopTimeout = 3 * time.Second
)

// Tungate is a running tungate started by StartTungate.
type Tungate struct {
	*Proc

	t        testing.TB
	stopOnce sync.Once
	stopped  time.Duration
}

// TungateCommand returns an unstarted command running the built tungate with
// args in the test's own namespace, for tests that check how it fails.
func TungateCommand(t testing.TB, ctx context.Context, args ...string) *exec.Cmd {
	t.Helper()
	return exec.CommandContext(ctx, TungatePath(t), args...)
}

// StartTungate runs tungate with args in the test's own namespace and waits
// until it logs msg=serving (failing the test, with tungate's output, if that
// takes more than ServingTimeout). On t's cleanup it is stopped as by Stop.
func StartTungate(t testing.TB, args ...string) *Tungate {
	t.Helper()
	return StartTungateCommand(t, exec.Command(TungatePath(t), args...))
}

// StartTungateCommand is StartTungate for a command the test prepared
// itself (from TungateCommand), e.g. with ExtraFiles for --device fd://N.
func StartTungateCommand(t testing.TB, cmd *exec.Cmd) *Tungate {
	t.Helper()
	p, err := startProc(cmd)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	g := &Tungate{Proc: p, t: t}
	t.Cleanup(func() {
		g.Stop()
		if t.Failed() {
			t.Logf("tungate output:\n%s", g.Output())
		}
	})
	if err := p.WaitOutput("msg=serving", ServingTimeout); err != nil {
		t.Fatalf("netlab: tungate not serving: %v", err)
	}
	return g
}

// Stop sends SIGTERM and returns how long tungate took to exit. It fails the
// test unless tungate exits with status 0 within StopTimeout. Only the first
// call stops; later ones return the same duration.
func (g *Tungate) Stop() time.Duration {
	g.t.Helper()
	g.stopOnce.Do(func() {
		start := time.Now()
		err := g.Proc.Stop(StopTimeout)
		g.stopped = time.Since(start)
		if err != nil {
			g.t.Errorf("netlab: tungate after SIGTERM: %v; output:\n%s", err, g.Output())
		}
		if errors.Is(err, ErrStopTimeout) {
			g.removeControlSocket()
		}
	})
	return g.stopped
}

// servingDevice finds the device name in tungate's msg=serving line.
var servingDevice = regexp.MustCompile(`msg=serving device=(\S+)`)

// removeControlSocket removes the default control socket of a tungate that
// had to be killed (a dead instance's socket stays in /run/tungate, named
// after its device, until another instance uses that device): tests leave
// nothing behind.
func (g *Tungate) removeControlSocket() {
	m := servingDevice.FindStringSubmatch(g.Output())
	if m == nil {
		return
	}
	path := filepath.Join("/run/tungate", filepath.Base(m[1])+".sock")
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
}
