package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// TestVersionOutput runs --version of real builds: the test's own build
// names the Go and gVisor versions (the module's go.mod pins gVisor), and
// a build with -ldflags -X main.version prints that version instead.
func TestVersionOutput(t *testing.T) {
	t.Parallel()
	netlab.RequireBinary(t, "go")
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`gvisor\.dev/gvisor (\S+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod names no gvisor.dev/gvisor version")
	}
	gvisor := "gvisor " + string(m[1])
	out, err := exec.Command(netlab.TungatePath(t), "--version").CombinedOutput()
	if err != nil || !regexp.MustCompile(`^tungate \S+ \(go1\.\S+, `+regexp.QuoteMeta(gvisor)+`\)\n$`).Match(out) {
		t.Errorf("tungate --version: %v: %q, want tungate VERSION (goX, %s)", err, out, gvisor)
	}
	bin := filepath.Join(t.TempDir(), "tungate")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=9.9.9-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "tungate 9.9.9-test (go1.") || !strings.Contains(string(out), gvisor) {
		t.Errorf("-ldflags -X build: --version %v: %q", err, out)
	}
}
