package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a background process whose stdout and stderr are collected
// together, so a test can wait for a line such as "ready" or "msg=serving".
type Proc struct {
	// Name is what the process is called in messages: its command line.
	Name string

	cmd  *exec.Cmd
	out  outputBuffer
	done chan struct{} // closed once Wait has returned
	err  error         // Wait's result, set before done closes

	stopOnce sync.Once
	stopErr  error // Stop's result, set once
}

// startProc starts cmd with its output collected. The caller owns stopping it.
func startProc(cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{Name: strings.Join(cmd.Args, " "), cmd: cmd, done: make(chan struct{})}
	p.out.changed = make(chan struct{})
	cmd.Stdout = &p.out
	cmd.Stderr = &p.out
	if cmd.WaitDelay == 0 {
		// A child that inherited the output pipes must not keep Wait blocked.
		cmd.WaitDelay = 2 * time.Second
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.Name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// CPUTime returns the user and system CPU time the process has used so
// far (all of it once it has exited), for tests that bound a step's cost
// rather than its wall time on a loaded machine.
func (p *Proc) CPUTime() time.Duration {
	select {
	case <-p.done:
		st := p.cmd.ProcessState
		return st.UserTime() + st.SystemTime()
	default:
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th, in clock ticks
	// (100 a second on Linux).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// Output returns everything the process has written so far.
func (p *Proc) Output() string { return p.out.String() }

// Done is closed when the process has exited; Err then tells how.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err returns the result of waiting for the process (nil for exit status 0).
// It is only meaningful after Done is closed.
func (p *Proc) Err() error { return p.err }

// WaitOutput waits until the output contains substr. It fails if the process
// exits first or timeout passes, and the error carries the output so far.
func (p *Proc) WaitOutput(substr string, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		text, changed := p.out.snapshot()
		if strings.Contains(text, substr) {
			return nil
		}
		select {
		case <-changed:
		case <-p.done:
			if text := p.Output(); strings.Contains(text, substr) {
				return nil
			}
			return fmt.Errorf("%s exited (%v) before printing %q; output:\n%s", p.Name, p.err, substr, p.Output())
		case <-timer.C:
			return fmt.Errorf("%s did not print %q within %v; output:\n%s", p.Name, substr, timeout, p.Output())
		}
	}
}

// ErrStopTimeout is returned by Stop when the process ignored SIGTERM for the
// whole grace period and had to be killed.
var ErrStopTimeout = errors.New("did not exit after SIGTERM")

// Stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It returns the process's exit error (nil for status 0), or an
// error wrapping ErrStopTimeout if it had to be killed. Only the first call
// signals; later calls return the same result.
func (p *Proc) Stop(grace time.Duration) error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			p.stopErr = p.err
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			p.stopErr = p.err
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.stopErr = fmt.Errorf("%s %w within %v", p.Name, ErrStopTimeout, grace)
		}
	})
	return p.stopErr
}

// runOutput runs cmd to completion and returns its combined output; the error
// names the command and carries the output.
func runOutput(ctx context.Context, cmd *exec.Cmd) (string, error) {
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return string(out), fmt.Errorf("%s: %w; output:\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out), nil
}

// outputBuffer collects a process's output and wakes those waiting for more.
type outputBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func (b *outputBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return len(p), nil
}

func (b *outputBuffer) String() string {
	text, _ := b.snapshot()
	return text
}

// snapshot returns the output so far and a channel closed at the next write.
func (b *outputBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.changed
}
