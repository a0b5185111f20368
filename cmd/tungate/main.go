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
	stopProfile := func() {}
	// The setup process of `run` is this program too, with the same
	// environment: it would write an empty profile of its own.
	if !isSetupChild(os.Args[1:]) {
		stopProfile = startCPUProfile(os.Stderr)
	}
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
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

// newGatewayFlags is the flag set of plain `tungate`, bound to cfg. The
// completions and the man page test read it too, so every flag added here
// shows up there.
func newGatewayFlags(cfg *gatewayConfig) *pflag.FlagSet {
	fs := pflag.NewFlagSet("tungate", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addDeviceFlags(fs, cfg)
	addGatewayFlags(fs, cfg)
	fs.Bool("version", false, "print the version and exit")
	fs.BoolP("help", "h", false, "show this help")
	return fs
}

// run is the whole program, minus the process: testable with any args and
// writers.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "run" {
		return runCommand(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "completion" {
		return completionCommand(args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "flows" {
		return flowsCommand(ctx, args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "cleanup" {
		return cleanupCommand(ctx, args[1:], stdout)
	}
	var cfg gatewayConfig
	fs := newGatewayFlags(&cfg)
	if err := fs.Parse(args); err != nil {
		return flagParseError(err)
	}
	if help, _ := fs.GetBool("help"); help {
		printGatewayHelp(stdout, fs)
		return nil
	}
	if v, _ := fs.GetBool("version"); v {
		fmt.Fprintln(stdout, versionLine())
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
