package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
)

// cpuProfileEnv names a file to write a Go CPU profile of the whole run
// to; "%p" in it becomes the process ID, so that each of several tungate
// processes (the benchmark starts one per MTU) writes its own. It is a
// hidden knob for measuring tungate (see the README's benchmark section),
// not a flag: it costs nothing when unset.
const cpuProfileEnv = "TUNGATE_CPUPROFILE"

// startCPUProfile starts the CPU profile that TUNGATE_CPUPROFILE asks for
// and returns the function that writes it out; a failure is reported on
// stderr and leaves the run unprofiled.
func startCPUProfile(stderr io.Writer) (stop func()) {
	path := os.Getenv(cpuProfileEnv)
	if path == "" {
		return func() {}
	}
	path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(stderr, "tungate: %s: %v\n", cpuProfileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(stderr, "tungate: %s: start CPU profile: %v\n", cpuProfileEnv, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "tungate: %s: %v\n", cpuProfileEnv, err)
		}
	}
}
