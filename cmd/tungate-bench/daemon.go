package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// daemon is a long-running process the benchmark started (a server or a
// gateway). It dies with the benchmark even on SIGKILL (Pdeathsig).
type daemon struct {
	name string
	cmd  *exec.Cmd
	logs *tailBuffer
	done chan struct{}
	err  error // set before done closes
}

// startDaemon starts argv inside network namespace netns ("" for the
// namespace of the benchmark).
func startDaemon(netns string, argv ...string) (*daemon, error) {
	name := filepath.Base(argv[0])
	if netns != "" {
		argv = append([]string{"nsenter", "--net=" + netns, "--"}, argv...)
	}
	logs := &tailBuffer{max: 4096}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logs
	cmd.Stderr = logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", strings.Join(argv, " "), err)
	}
	d := &daemon{name: name, cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// pid is the process id; nsenter execs the target, so it is the daemon's own.
func (d *daemon) pid() int { return d.cmd.Process.Pid }

// exited returns an error describing an early exit, or nil while running.
func (d *daemon) exited() error {
	select {
	case <-d.done:
		return fmt.Errorf("%s exited: %v: %s", d.name, d.err, d.logs.String())
	default:
		return nil
	}
}

// stop asks the process group to end (SIGTERM), and kills it after grace.
func (d *daemon) stop(grace time.Duration) {
	_ = syscall.Kill(-d.pid(), syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(grace):
		_ = syscall.Kill(-d.pid(), syscall.SIGKILL)
		<-d.done
	}
}

// waitReady polls probe until it succeeds, the daemon exits, or timeout.
func (d *daemon) waitReady(ctx context.Context, timeout time.Duration, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := probe(ctx)
		if err == nil {
			return nil
		}
		if e := d.exited(); e != nil {
			return e
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %w; its output: %s", d.name, timeout, err, d.logs.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tailBuffer keeps the last max bytes written, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(string(b.buf))
}
