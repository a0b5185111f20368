package main

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSDNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	if err := sdNotify("READY=1"); err != nil {
		t.Fatal(err)
	}
	sock.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := sock.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("got %q, %v; want READY=1", buf[:n], err)
	}
	t.Setenv("NOTIFY_SOCKET", "relative/path")
	if err := sdNotify("READY=1"); err == nil {
		t.Error("a relative NOTIFY_SOCKET: no error")
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := sdNotify("READY=1"); err != nil {
		t.Errorf("no NOTIFY_SOCKET: %v", err)
	}
}

func TestReadyFDLine(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// A descriptor of its own, as an inherited one would be: signalReady
	// closes it, and w must not close that number again later.
	fd, err := unix.Dup(int(w.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	c := readyConfig{fd: fd}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	c.signalReady(slog.New(slog.NewTextHandler(&logs, nil)))
	c.signalReady(slog.New(slog.NewTextHandler(&logs, nil))) // once only
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "ready\n" {
		t.Fatalf("read %q, %v; want one line and EOF", b, err)
	}
	if logs.Len() != 0 {
		t.Errorf("logged: %s", logs.String())
	}
	// The descriptor is closed now: validate refuses it.
	closed := readyConfig{fd: fd}
	if err := closed.validate(); err == nil || !strings.Contains(err.Error(), "is not open") || !isUsage(err) {
		t.Errorf("closed fd: %v, want a usage error saying it is not open", err)
	}
}
