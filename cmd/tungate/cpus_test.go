package main

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
)

func TestSetCPUs(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Setenv("GOMAXPROCS", "")
	runtime.GOMAXPROCS(4)
	setCPUs(0, log)
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Errorf("--cpus 0 with 4 usable CPUs: GOMAXPROCS %d, want 2", got)
	}
	runtime.GOMAXPROCS(1)
	setCPUs(0, log)
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Errorf("--cpus 0 with 1 usable CPU: GOMAXPROCS %d, want 1", got)
	}
	setCPUs(3, log)
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("--cpus 3: GOMAXPROCS %d, want 3", got)
	}

	t.Setenv("GOMAXPROCS", "3")
	setCPUs(0, log)
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("--cpus 0 with GOMAXPROCS=3 in the environment: GOMAXPROCS %d, want 3 kept", got)
	}
}

// TestIsSetupChild: only `run --internal-namespace-setup` is the setup
// process (which must not start a CPU profile of its own).
func TestIsSetupChild(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"run", setupChildArg}, true},
		{[]string{"run", "--", "sh"}, false},
		{[]string{setupChildArg}, false},
		{[]string{"run"}, false},
		{nil, false},
	} {
		if got := isSetupChild(c.args); got != c.want {
			t.Errorf("isSetupChild(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}
