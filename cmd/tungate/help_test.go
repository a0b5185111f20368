package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelpListsSubcommands: `tungate --help` names every subcommand with
// its line, and each subcommand has its own --help.
func TestHelpListsSubcommands(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	for _, c := range subcommands() {
		if !strings.Contains(help, "  "+c.name+" ") || !strings.Contains(help, c.summary) {
			t.Errorf("tungate --help does not list %q with %q:\n%s", c.name, c.summary, help)
		}
		var sub bytes.Buffer
		err := run(context.Background(), []string{c.name, "--help"}, &sub, &bytes.Buffer{})
		if exitCode(err, &bytes.Buffer{}) != exitOK || !strings.Contains(sub.String(), "Usage: tungate "+c.name) {
			t.Errorf("tungate %s --help: %v\n%s", c.name, err, sub.String())
		}
	}
}

// TestHelpPlaceholders: no flag shows pflag's bare type name ("string",
// "int") where a placeholder that says what goes there belongs.
func TestHelpPlaceholders(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"run", "--help"}} {
		var out bytes.Buffer
		_ = run(context.Background(), args, &out, &bytes.Buffer{})
		for _, line := range strings.Split(out.String(), "\n") {
			fields := strings.Fields(line)
			for i, f := range fields {
				if strings.HasPrefix(f, "--") && i+1 < len(fields) && (fields[i+1] == "string" || fields[i+1] == "int" || fields[i+1] == "uint") {
					t.Errorf("tungate %s: %q has no placeholder: %s", strings.Join(args, " "), f, strings.TrimSpace(line))
				}
			}
		}
		if args[0] == "run" {
			for _, want := range []string{"--netns-path PATH", "--user NAME|UID"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("tungate run --help lacks %q", want)
				}
			}
		}
	}
}

// TestHelpDocumentsSocks5h: socks5h:// is accepted, so --help says what it
// is.
func TestHelpDocumentsSocks5h(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "socks5h://") {
		t.Errorf("tungate --help does not mention socks5h://")
	}
	if err := run(context.Background(), []string{"--proxy", "socks5h://127.0.0.1:1080", "--version"}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Errorf("--proxy socks5h://: %v", err)
	}
}
