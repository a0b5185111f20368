package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/pflag"
)

// subcommand is one row of the command list in `tungate --help`.
type subcommand struct {
	name    string
	summary string
	// flags, if not nil, makes the command's flag set (bound to a throwaway
	// config), for the completions.
	flags func() *pflag.FlagSet
}

// subcommands lists tungate's subcommands in the order --help shows them.
// A new subcommand adds one row here, next to its dispatch line in run;
// the completions then offer it, and its flags if flags is set.
func subcommands() []subcommand {
	return []subcommand{
		{"run", "run a command in a network namespace of its own whose only way out is tungate", func() *pflag.FlagSet { return newRunFlags(&runConfig{}) }},
		{"flows", "show the live flow table of a running instance, or end one flow", func() *pflag.FlagSet { return newFlowsFlags(&flowsOptions{}) }},
		{"cleanup", "remove what a crashed --auto-route instance left", func() *pflag.FlagSet { return newCleanupFlags(&cleanupOptions{}) }},
		{"completion", "print a bash, zsh or fish completion script", nil},
	}
}

const gatewayUsage = `Usage: tungate [flags]
       tungate COMMAND [flags] [ARGS...]

Serve a TUN device with a userspace TCP/IP stack and re-dial every flow
through host sockets, optionally through proxies.

Commands:
`

// printGatewayHelp writes `tungate --help`: the usage, the subcommands and
// the gateway's flags.
func printGatewayHelp(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprint(w, gatewayUsage)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range subcommands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nRun 'tungate COMMAND --help' for a command's flags; man tungate for more.\n\nFlags:\n%s", fs.FlagUsages())
}
