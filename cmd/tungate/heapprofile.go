package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
)

// heapProfileEnv names a file to write a Go heap profile to when tungate
// stops (SIGINT, SIGTERM), before its flows are torn down; "%p" in it
// becomes the process ID, as for TUNGATE_CPUPROFILE. It is a hidden knob
// for measuring memory per flow (see the README's benchmark section), not
// a flag: it costs nothing when unset.
const heapProfileEnv = "TUNGATE_HEAPPROFILE"

// writeHeapProfile writes the heap profile that TUNGATE_HEAPPROFILE asks
// for, if any; a failure is logged and changes nothing else.
func writeHeapProfile(log *slog.Logger) {
	path := os.Getenv(heapProfileEnv)
	if path == "" {
		return
	}
	path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
	if err := heapProfileTo(path); err != nil {
		log.Warn("heap profile not written", "env", heapProfileEnv, "err", err)
	}
}

func heapProfileTo(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	// The in-use figures are as of the last GC: collect first, so that
	// they are what the live flows hold.
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}
