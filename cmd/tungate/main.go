// Command tungate serves a TUN device with gVisor's userspace network stack
// and re-dials every TCP and UDP flow that arrives on it through the host's
// own sockets. See README.md for the flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	gvlog "gvisor.dev/gvisor/pkg/log"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	// gVisor logs some per-packet drops (martian addresses) at info level
	// through its own process-wide logger; they are counted in the stack's
	// stats, and must not reach the terminal of a program under `run`.
	gvlog.SetLevel(gvlog.Warning)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode reports err on stderr as one line and picks the exit status.
func exitCode(err error, stderr io.Writer) int {
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, pflag.ErrHelp):
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	}
	fmt.Fprintf(stderr, "tungate: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	if isUsage(err) {
		return exitUsage
	}
	return exitFailure
}

// exitError carries a status chosen elsewhere (a command's, under `run`)
// without a message.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// run is the whole program, minus the process: testable with any args and
// writers.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "run" {
		return runCommand(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "cleanup" {
		return cleanupCommand(ctx, args[1:], stdout)
	}
	var cfg gatewayConfig
	fs := pflag.NewFlagSet("tungate", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addDeviceFlags(fs, &cfg)
	addGatewayFlags(fs, &cfg)
	showVersion := fs.Bool("version", false, "print the version and exit")
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		return flagParseError(err)
	}
	if *help {
		fmt.Fprintf(stdout, "Usage: tungate [flags]\n\nServe a TUN device with a userspace TCP/IP stack and re-dial every flow through host sockets.\n\nFlags:\n%s", fs.FlagUsages())
		return nil
	}
	if *showVersion {
		fmt.Fprintf(stdout, "tungate %s\n", version)
		return nil
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q: tungate takes flags only", fs.Arg(0))
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel.level}))
	return serve(ctx, &cfg, log)
}
