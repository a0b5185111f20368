package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestLoadGeneratorsOnLoopback runs the servers and every load generator
// against each other on 127.0.0.1 and checks what they report.
func TestLoadGeneratorsOnLoopback(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- runServe(ctx, []string{"-addr", "127.0.0.1"}, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	waitDial(t, "127.0.0.1:7101")

	var cr connRateResult
	runJSON(t, runConnRate, &cr, "-addr", "127.0.0.1:7101", "-c", "4", "-d", "300ms")
	if cr.Connections == 0 || cr.Errors != 0 {
		t.Errorf("connrate = %+v, want connections and no errors", cr)
	}
	var ur udpResult
	runJSON(t, runUDPRoundTrips, &ur, "-addr", "127.0.0.1:7102", "-c", "2", "-d", "300ms")
	if ur.RoundTrips == 0 || ur.MedianUS <= 0 {
		t.Errorf("udprr = %+v, want round trips and a median", ur)
	}
	var ir idleResult
	runJSON(t, runIdle, &ir, "-addr", "127.0.0.1:7103", "-n", "50", "-d", "5s")
	if ir.Open != 50 || ir.Failed != 0 {
		t.Errorf("idle = %+v, want 50 open", ir)
	}
	if err := runConnRate(ctx, []string{"-c", "0"}, io.Discard, io.Discard); err == nil {
		t.Error("connrate without -addr: want a usage error")
	}
}

func runJSON(t *testing.T, cmd func(context.Context, []string, io.Writer, io.Writer) error, v any, args ...string) {
	t.Helper()
	var out, errOut strings.Builder
	if err := cmd(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("%v: %v: %s", args, err, errOut.String())
	}
	if err := json.Unmarshal([]byte(out.String()), v); err != nil {
		t.Fatalf("%v printed %q: %v", args, out.String(), err)
	}
}

func waitDial(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never listened on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
