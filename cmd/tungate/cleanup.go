package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/tungate/tungate/stack/hostroute"
)

const cleanupUsage = `Usage: tungate cleanup [--route-table N] [--rule-priority N]

Remove what a tungate --auto-route that did not stop cleanly (killed,
crashed) left in this network namespace: its policy rules, the routes of
its table and the nftables table inet tungate. Rules and routes that
tungate did not add are left alone. Prints one line per entry removed, and
exits 0 whether or not anything was left. Refused while a tungate
--auto-route is running in the namespace.

Flags:
`

// cleanupOptions is what the flags of `tungate cleanup` say.
type cleanupOptions struct {
	table, priority int
	help            bool
}

// newCleanupFlags is the flag set of `tungate cleanup`; --help and the
// completions read it too.
func newCleanupFlags(o *cleanupOptions) *pflag.FlagSet {
	o.table, o.priority = hostroute.DefaultTable, hostroute.DefaultPriority
	fs := pflag.NewFlagSet("tungate cleanup", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(intValue{&o.table, 1, 0x7fffffff}, "route-table", "the routing table the instance used")
	fs.Lookup("route-table").DefValue = strconv.Itoa(hostroute.DefaultTable)
	fs.Var(intValue{&o.priority, 1, 32766 - hostroute.PriorityBlock}, "rule-priority", "the first rule priority the instance used")
	fs.Lookup("rule-priority").DefValue = strconv.Itoa(hostroute.DefaultPriority)
	fs.BoolVarP(&o.help, "help", "h", false, "show this help")
	return fs
}

// cleanupCommand is `tungate cleanup`.
func cleanupCommand(_ context.Context, args []string, stdout io.Writer) error {
	var o cleanupOptions
	fs := newCleanupFlags(&o)
	if err := fs.Parse(args); err != nil {
		return flagParseError(err)
	}
	if o.help {
		fmt.Fprintf(stdout, "%s%s", cleanupUsage, fs.FlagUsages())
		return nil
	}
	if fs.NArg() > 0 {
		return usageErrorf("cleanup: unexpected argument %q: cleanup takes flags only", fs.Arg(0))
	}
	removed, err := hostroute.Cleanup(o.table, o.priority)
	for _, line := range removed {
		fmt.Fprintf(stdout, "removed %s\n", line)
	}
	if err != nil {
		return err
	}
	if len(removed) == 0 {
		fmt.Fprintln(stdout, "nothing to clean up")
	}
	return nil
}
