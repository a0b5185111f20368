package main

import (
	"bytes"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrintFlows(t *testing.T) {
	body := []byte(`[{"id":7,"protocol":"tcp","src":"198.18.0.1:40000","dst":"10.0.0.2:80","route":"direct",
		"start":"2026-01-01T00:00:00Z","bytes_up":100,"bytes_down":3145728,"state":"open","age":65,"rate_up":0,"rate_down":1536}]`)
	var out bytes.Buffer
	if err := printFlows(&out, body, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") {
		t.Fatalf("table:\n%s", out.String())
	}
	for _, want := range []string{"7", "tcp", "198.18.0.1:40000", "10.0.0.2:80", "direct", "open", "1m05s", "100B", "3.0MiB", "1.5KiB/s"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	out.Reset()
	if err := printFlows(&out, body, true); err != nil || !strings.HasPrefix(out.String(), `[{"id":7,`) {
		t.Errorf("--json printed %q (%v)", out.String(), err)
	}
	if err := printFlows(&out, []byte("<html>"), false); err == nil {
		t.Error("a body that is not JSON printed")
	}
}

func TestFindInstance(t *testing.T) {
	dir := t.TempDir()
	if _, err := findInstanceIn(dir); err == nil || !strings.Contains(err.Error(), "--control PATH") {
		t.Errorf("no instance: %v", err)
	}
	listen := func(name string) string {
		p := filepath.Join(dir, name)
		ln, err := net.Listen("unix", p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return p
	}
	a := listen("a.sock")
	if got, err := findInstanceIn(dir); err != nil || got != a {
		t.Errorf("one instance: %q, %v", got, err)
	}
	b := listen("b.sock")
	_, err := findInstanceIn(dir)
	if err == nil || !isUsage(err) || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) {
		t.Errorf("two instances: %v; want a usage error naming both", err)
	}
}
