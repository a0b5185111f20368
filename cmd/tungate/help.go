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
}

// subcommands lists tungate's subcommands in the order --help shows them.
// A new subcommand adds one row here, next to its dispatch line in run.
func subcommands() []subcommand {
	return []subcommand{
		{"run", "run a command in a network namespace of its own whose only way out is tungate"},
		{"completion", "print a bash, zsh or fish completion script"},
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
