package main

// The man pages docs/tungate.1 and docs/tungate-run.1 are written by hand,
// except their OPTIONS sections, which are made from the flag sets. After
// adding or changing a flag, rewrite those sections with:
//
//	go test ./cmd/tungate -run TestManPages -update
//
// and review the diff. Without -update the test fails, listing the flags
// that are missing from a page or that a page has but the flag set does
// not, when a section is out of date.

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

var updateMan = flag.Bool("update", false, "rewrite the OPTIONS sections of the man pages in docs/ from the flag sets")

// Markers around the generated part of each page.
const (
	manBegin = `.\" BEGIN OPTIONS: made by: go test ./cmd/tungate -run TestManPages -update`
	manEnd   = `.\" END OPTIONS`
)

// manPages are the pages and the flag sets they document.
func manPages() map[string]*pflag.FlagSet {
	return map[string]*pflag.FlagSet{
		"../../docs/tungate.1":     newGatewayFlags(&gatewayConfig{}),
		"../../docs/tungate-run.1": newRunFlags(&runConfig{}),
	}
}

func TestManPages(t *testing.T) {
	for path, fs := range manPages() {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		page := string(b)
		start, end := strings.Index(page, manBegin), strings.Index(page, manEnd)
		if start < 0 || end < start {
			t.Fatalf("%s: no %q ... %q section", path, manBegin, manEnd)
		}
		start += len(manBegin) + 1
		want := manOptions(fs)
		if page[start:end] == want {
			continue
		}
		if *updateMan {
			if err := os.WriteFile(path, []byte(page[:start]+want+page[end:]), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote the OPTIONS of %s", path)
			continue
		}
		onPage, inSet := manFlagNames(page[start:end]), manFlagNames(want)
		var missing, extra []string
		for _, n := range inSet {
			if !slices.Contains(onPage, n) {
				missing = append(missing, n)
			}
		}
		for _, n := range onPage {
			if !slices.Contains(inSet, n) {
				extra = append(extra, n)
			}
		}
		t.Errorf("%s: OPTIONS out of date: missing %q, extra %q (other differences: flag texts or defaults); run: go test ./cmd/tungate -run TestManPages -update",
			filepath.Base(path), missing, extra)
	}
}

// TestManPageCommands: tungate.1 lists every subcommand of --help.
func TestManPageCommands(t *testing.T) {
	b, err := os.ReadFile("../../docs/tungate.1")
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, c := range subcommands() {
		if !strings.Contains(page, ".TP\n.B "+c.name) {
			t.Errorf("docs/tungate.1: COMMANDS lacks %q (add .TP, .B %s and a line)", c.name, c.name)
		}
	}
}

// manFlagName finds the long names in an OPTIONS section.
var manFlagName = regexp.MustCompile(`(?m)^\.TP\n(?:\\-[a-zA-Z], )?\\-\\-((?:[a-z0-9]|\\-)+)`)

func manFlagNames(section string) []string {
	var names []string
	for _, m := range manFlagName.FindAllStringSubmatch(section, -1) {
		names = append(names, "--"+strings.ReplaceAll(m[1], `\-`, "-"))
	}
	return names
}

// manOptions is the OPTIONS section for fs: one .TP entry per flag, sorted.
func manOptions(fs *pflag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(f *pflag.Flag) {
		name, usage := pflag.UnquoteUsage(f)
		b.WriteString(".TP\n")
		if f.Shorthand != "" {
			fmt.Fprintf(&b, `\-%s, `, f.Shorthand)
		}
		fmt.Fprintf(&b, `\-\-%s`, roffEscape(f.Name))
		if name != "" {
			fmt.Fprintf(&b, ` \fI%s\fR`, roffEscape(name))
		}
		b.WriteString("\n")
		text := usage
		if def := f.DefValue; def != "" && def != "false" && def != "0" && !strings.Contains(usage, "(default") {
			text += " (default " + def + ")"
		}
		fmt.Fprintf(&b, "%s\n", roffLine(text))
	})
	return b.String()
}

// roffEscape makes s literal in roff running text.
func roffEscape(s string) string {
	return strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
}

// roffLine is roffEscape for a whole line, which must not start with a
// control character.
func roffLine(s string) string {
	s = roffEscape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// TestManPagesRender formats each page with groff, which must not warn, and
// with man -l where man is installed.
func TestManPagesRender(t *testing.T) {
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("groff not installed (apt-get install groff-base)")
	}
	for path := range manPages() {
		out, err := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z", path).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff %s: %v\n%s", path, err, out)
		}
		if _, err := exec.LookPath("man"); err != nil {
			continue
		}
		cmd := exec.Command("man", "-l", path)
		cmd.Env = append(os.Environ(), "MANPAGER=cat", "PAGER=cat", "MANWIDTH=80")
		out, err = cmd.Output()
		if err != nil || !strings.Contains(string(out), "OPTIONS") || !strings.Contains(string(out), "--log-level") {
			t.Errorf("man -l %s: %v\n%s", path, err, out)
		}
	}
}
