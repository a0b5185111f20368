package main

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

// pidSocket matches the default control socket names that carry the
// owner's PID (controlName): PID.sock, run-PID.sock and fdN-PID.sock. A
// name with a device in it is reused, and so replaced, by the next
// instance on that device; these are not, so after a kill -9 they would
// stay for good.
var pidSocket = regexp.MustCompile(`^(?:run-|fd[0-9]+-)?([0-9]+)\.sock$`)

// sweepControlDir removes from dir the PID-named control sockets of
// instances that died without removing them: their PID is gone and
// nobody answers on them (a socket being bound right now belongs to a
// live PID, so it is never taken for dead).
func sweepControlDir(dir string, log *slog.Logger) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		m := pidSocket.FindStringSubmatch(e.Name())
		if m == nil || e.Type() != os.ModeSocket {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pidAlive(pid) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			continue
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			continue
		}
		if err := os.Remove(path); err == nil {
			log.Debug("removed the control socket of a dead instance", "path", path)
		}
	}
}

// pidAlive reports whether process pid exists (as far as this PID
// namespace shows).
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
