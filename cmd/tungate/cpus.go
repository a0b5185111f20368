package main

import (
	"log/slog"
	"os"
	"runtime"
)

// setCPUs sets how many CPUs run tungate's Go code at once (GOMAXPROCS)
// from --cpus: n, or with n == 0 half of the CPUs the process may use,
// at least one, unless the GOMAXPROCS environment variable chose already.
//
// Why half: every byte tungate moves costs about as much again in the
// kernel (the TUN copy, the host socket's TCP, the peers' softirq), in the
// threads of the applications and the servers. With a processor per CPU,
// each hand-off between tungate's goroutines wakes an idle thread that
// competes with that work. On 2 CPUs, one processor moved a single-stream
// upload 10-15% faster with a third less CPU per byte, and no row of
// `make bench` got worse. gVisor sizes its TCP processor pool from
// GOMAXPROCS, so this must run before the stack is built.
func setCPUs(n int, log *slog.Logger) {
	if n == 0 {
		if os.Getenv("GOMAXPROCS") != "" {
			return
		}
		n = max(1, runtime.GOMAXPROCS(0)/2)
	}
	runtime.GOMAXPROCS(n)
	log.Debug("cpus", "gomaxprocs", n)
}
