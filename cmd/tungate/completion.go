package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// completionShells are the shells `tungate completion` writes scripts for.
var completionShells = []string{"bash", "zsh", "fish"}

// flagChoices are the fixed values of the flags that have them, completed
// after the flag. TestCompletionChoicesAreAccepted checks every one against
// the flag's own parser, so this table cannot drift from the flags.
func flagChoices() map[string][]string {
	return map[string][]string{
		"udp":       {"proxy", "direct", "block"},
		"dns-mode":  {"fake", "forward"},
		"log-level": {"debug", "info", "warn", "error"},
	}
}

// completionCommand implements `tungate completion bash|zsh|fish`. The
// script is built from the flag sets each time, so a new flag is completed
// without touching this file.
func completionCommand(args []string, stdout io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, `Usage: tungate completion bash|zsh|fish

Print a completion script for the shell. To use it now:
  source <(tungate completion bash)       # bash
  source <(tungate completion zsh)        # zsh
  tungate completion fish | source        # fish
or install it where your shell looks for completions (make install does).
`)
		return pflag.ErrHelp
	}
	if len(args) != 1 {
		return usageErrorf("completion: want one shell: tungate completion bash|zsh|fish")
	}
	sets := completionSets()
	switch args[0] {
	case "bash":
		writeBashCompletion(stdout, sets)
	case "zsh":
		writeZshCompletion(stdout, sets)
	case "fish":
		writeFishCompletion(stdout, sets)
	default:
		return usageErrorf("completion: unknown shell %q: want bash, zsh or fish", args[0])
	}
	return nil
}

// completionSet is the flags of one command; name is "" for plain tungate.
type completionSet struct {
	name  string
	flags []*pflag.Flag
}

// completionSets is plain tungate's flags, then those of each subcommand
// that has flags.
func completionSets() []completionSet {
	sets := []completionSet{{"", sortedFlags(newGatewayFlags(&gatewayConfig{}))}}
	for _, c := range subcommands() {
		if c.flags != nil {
			sets = append(sets, completionSet{c.name, sortedFlags(c.flags())})
		}
	}
	return sets
}

func sortedFlags(fs *pflag.FlagSet) []*pflag.Flag {
	var out []*pflag.Flag
	fs.VisitAll(func(f *pflag.Flag) { out = append(out, f) })
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// takesValue reports whether the flag needs an argument (not a boolean).
func takesValue(f *pflag.Flag) bool { return f.NoOptDefVal == "" }

// shortDescription is the first clause of a flag's usage, for the shells
// that show one next to each candidate.
func shortDescription(f *pflag.Flag) string {
	_, usage := pflag.UnquoteUsage(f)
	if i := strings.IndexAny(usage, ";:("); i > 0 {
		usage = usage[:i]
	}
	usage = strings.TrimSpace(usage)
	if len(usage) > 70 {
		usage = strings.TrimSpace(usage[:67]) + "..."
	}
	return usage
}

// flagWords lists "--name" and "-n" of each flag.
func flagWords(flags []*pflag.Flag, withValue bool) []string {
	var w []string
	for _, f := range flags {
		if takesValue(f) != withValue {
			continue
		}
		w = append(w, "--"+f.Name)
		if f.Shorthand != "" {
			w = append(w, "-"+f.Shorthand)
		}
	}
	return w
}

func subcommandNames() []string {
	var names []string
	for _, c := range subcommands() {
		names = append(names, c.name)
	}
	return names
}
