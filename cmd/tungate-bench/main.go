// Command tungate-bench measures tungate against the kernel, pasta and
// slirp4netns on the same machine in the same run.
//
// Every path carries the same client -> server traffic between network
// namespaces the benchmark creates itself: the kernel routing between veths
// (the ceiling), tungate with --netns, tungate run, pasta and slirp4netns.
// It measures TCP throughput (iperf3), the gateway's CPU time per GB and peak
// memory, short TCP connections per second, UDP request/response rate and
// latency, and the memory cost of idle TCP connections, then prints a table
// and writes JSON under bench/results.
//
// The same binary is also the load generator: the subcommands serve, probe,
// connrate, udprr and idle run inside the namespaces (via nsenter).
// It must run as root; it installs nothing and skips a path whose tool is
// missing, naming the Debian package to install.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// exitUsage is the exit code for a bad command line.
const exitUsage = 2

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "tungate-bench: %v\n", err)
	if errors.Is(err, errUsage) {
		os.Exit(exitUsage)
	}
	os.Exit(1)
}

// errUsage marks command-line mistakes.
var errUsage = errors.New("usage")

// run dispatches to a subcommand; without one it runs the whole benchmark.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			return runServe(ctx, args[1:], stderr)
		case "probe":
			return runProbe(ctx, args[1:], stderr)
		case "connrate":
			return runConnRate(ctx, args[1:], stdout, stderr)
		case "udprr":
			return runUDPRoundTrips(ctx, args[1:], stdout, stderr)
		case "idle":
			return runIdle(ctx, args[1:], stdout, stderr)
		}
	}
	return runBench(ctx, args, stdout, stderr)
}
