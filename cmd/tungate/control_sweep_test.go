package main

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestSweepControlDir: the PID-named sockets of dead instances go; those
// of live ones, those someone answers on, device-named ones and other
// files stay.
func TestSweepControlDir(t *testing.T) {
	dir := t.TempDir()
	// A PID that is free: past the largest possible one.
	const dead = 4194305
	stale := func(name string) string {
		p := filepath.Join(dir, name)
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close()
		return p
	}
	gone := []string{stale("run-" + strconv.Itoa(dead) + ".sock"), stale(strconv.Itoa(dead) + ".sock"), stale("fd3-" + strconv.Itoa(dead) + ".sock")}
	kept := []string{stale("run-" + strconv.Itoa(os.Getpid()) + ".sock"), stale("tg0.sock")}
	answered := filepath.Join(dir, "run-"+strconv.Itoa(dead+1)+".sock")
	ln, err := net.Listen("unix", answered)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	kept = append(kept, answered)
	notSocket := filepath.Join(dir, strconv.Itoa(dead)+"0.sock")
	if err := os.WriteFile(notSocket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, notSocket)

	sweepControlDir(dir, slog.New(slog.DiscardHandler))
	for _, p := range gone {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s of a dead instance is still there", filepath.Base(p))
		}
	}
	for _, p := range kept {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(p), err)
		}
	}
}
