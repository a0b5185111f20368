package caps

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSet(t *testing.T) {
	s := Of(unix.CAP_NET_ADMIN, unix.CAP_NET_RAW)
	if s.String() != "0000000000003000" || s.Names() != "net_admin,net_raw" {
		t.Errorf("Of(net_admin, net_raw) = %s %q", s, s.Names())
	}
	if !s.Has(unix.CAP_NET_RAW) || s.Has(unix.CAP_SYS_ADMIN) {
		t.Errorf("Has is wrong for %s", s)
	}
	if got := Of(40, 45).Names(); got != "checkpoint_restore,cap_45" {
		t.Errorf("Names = %q", got)
	}
}

// childEnv makes the test binary, re-executed, drop to net_raw and print
// the status lines of all its threads.
const childEnv = "TUNGATE_CAPS_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if _, err := Drop(Of(unix.CAP_NET_RAW)); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		tasks, _ := filepath.Glob("/proc/self/task/*/status")
		for _, task := range tasks {
			b, _ := os.ReadFile(task)
			for _, line := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(line, "Cap") || strings.HasPrefix(line, "NoNewPrivs") {
					os.Stdout.WriteString(line + "\n")
				}
			}
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestDropEveryThread(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: there are no capabilities to drop otherwise")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	want := map[string]string{"CapPrm": "0000000000002000", "CapEff": "0000000000002000", "CapBnd": "0000000000002000",
		"CapInh": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1"}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if w, ok := want[k]; ok {
			n++
			if strings.TrimSpace(v) != w {
				t.Errorf("%s %s, want %s", k, strings.TrimSpace(v), w)
			}
		}
	}
	if n < 2*len(want) {
		t.Errorf("saw %d status lines, want those of at least two threads:\n%s", n, out)
	}
}
