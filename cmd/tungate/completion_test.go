package main

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// bashComplete sources the bash completion script and completes words
// (the last one being the word under the cursor), returning the candidates.
func bashComplete(t *testing.T, words ...string) []string {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	var script bytes.Buffer
	if err := run(context.Background(), []string{"completion", "bash"}, &script, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = "'" + w + "'"
	}
	prog := script.String() + `
complete -p tungate >/dev/null || { echo "not registered" >&2; exit 1; }
COMP_WORDS=(tungate ` + strings.Join(quoted, " ") + `)
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_tungate
printf '%s\n' "${COMPREPLY[@]}"
`
	out, err := exec.Command("bash", "--norc", "--noprofile", "-c", prog).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

func TestBashCompletion(t *testing.T) {
	cases := []struct {
		words []string
		want  []string
		not   []string
	}{
		{[]string{"--no-r"}, []string{"--no-routes"}, nil},
		{[]string{"--ver"}, []string{"--version"}, nil},
		{[]string{"r"}, []string{"run"}, nil},
		{[]string{"run", "--netns-"}, []string{"--netns-path"}, nil},
		{[]string{"run", "--all"}, []string{"--allow-host-loopback"}, nil},
		{[]string{"run", "--no"}, nil, []string{"--no-routes"}}, // a gateway-only flag
		{[]string{"--udp", ""}, []string{"proxy", "direct", "block"}, nil},
		{[]string{"run", "--dns-mode", "f"}, []string{"fake", "forward"}, nil},
		{[]string{"--log-level", "w"}, []string{"warn"}, nil},
		{[]string{"completion", "z"}, []string{"zsh"}, nil},
	}
	for _, tc := range cases {
		got := bashComplete(t, tc.words...)
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("completing %q: %q, want %q among them", tc.words, got, w)
			}
		}
		for _, w := range tc.not {
			if slices.Contains(got, w) {
				t.Errorf("completing %q: %q offered", tc.words, w)
			}
		}
	}
}

// TestCompletionCoversEveryFlag: the scripts are built from the flag sets,
// so each flag of each set is in each script.
func TestCompletionCoversEveryFlag(t *testing.T) {
	for _, shell := range completionShells {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"completion", shell}, &out, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		for _, s := range completionSets() {
			for _, f := range s.flags {
				if !strings.Contains(out.String(), f.Name) {
					t.Errorf("%s completion lacks --%s of %q", shell, f.Name, s.name)
				}
			}
		}
	}
}

// TestCompletionChoicesAreAccepted: every value offered for a flag parses.
func TestCompletionChoicesAreAccepted(t *testing.T) {
	for name, values := range flagChoices() {
		for _, v := range values {
			found := false
			for _, s := range completionSets() {
				fs := newGatewayFlags(&gatewayConfig{})
				for _, c := range subcommands() {
					if c.name == s.name {
						fs = c.flags()
					}
				}
				if fs.Lookup(name) == nil {
					continue
				}
				found = true
				if err := fs.Set(name, v); err != nil {
					t.Errorf("%s --%s %s: %v", s.name, name, v, err)
				}
			}
			if !found {
				t.Errorf("completion offers values for --%s, which no command has", name)
			}
		}
	}
}

func TestCompletionUsage(t *testing.T) {
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}, {"completion", "bash", "zsh"}} {
		err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
		if code := exitCode(err, &bytes.Buffer{}); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// TestZshFishCompletion checks the zsh script's syntax and completes a flag
// with fish, where those shells are installed.
func TestZshFishCompletion(t *testing.T) {
	script := func(shell string) string {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"completion", shell}, &out, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	t.Run("zsh", func(t *testing.T) {
		if _, err := exec.LookPath("zsh"); err != nil {
			t.Skip("zsh not installed (apt-get install zsh)")
		}
		cmd := exec.Command("zsh", "-n")
		cmd.Stdin = strings.NewReader(script("zsh"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("zsh -n: %v\n%s", err, out)
		}
	})
	t.Run("fish", func(t *testing.T) {
		if _, err := exec.LookPath("fish"); err != nil {
			t.Skip("fish not installed (apt-get install fish)")
		}
		out, err := exec.Command("fish", "--no-config", "-c", script("fish")+"\ncomplete -C 'tungate run --allow-h'; complete -C 'tungate --udp '").CombinedOutput()
		if err != nil {
			t.Fatalf("fish: %v\n%s", err, out)
		}
		for _, want := range []string{"--allow-host-loopback", "proxy", "block"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("fish completions %q lack %q", out, want)
			}
		}
	})
}
