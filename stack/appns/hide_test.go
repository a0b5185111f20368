package appns

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// hideChildEnv makes the test binary, re-executed in a mount namespace of
// its own, run hideChild on the directory it names.
const hideChildEnv = "TUNGATE_APPNS_HIDE_TEST_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(hideChildEnv); dir != "" {
		if err := hideChild(dir); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// hideChild does what the setup process does on a systemd host, in dir:
// resolv.conf is a symlink into resolve/, which is hidden, and the private
// file is mounted over the symlink's target. It prints what is left.
func hideChild(dir string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	target, err := filepath.EvalSymlinks(filepath.Join(dir, "resolv.conf"))
	if err != nil {
		return err
	}
	hidden, err := hidePaths([]string{filepath.Join(dir, "resolve"), filepath.Join(dir, "nscd-link"), filepath.Join(dir, "missing")})
	if err != nil {
		return err
	}
	if err := bindOver(filepath.Join(dir, "private.conf"), target, hidden); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(dir, "resolv.conf"))
	if err != nil {
		return err
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "resolve"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	_, dialErr := net.Dial("unix", filepath.Join(dir, "resolve", "io.systemd.Resolve"))
	fmt.Printf("resolv.conf=%q\nhidden=%d\nleft=%s\nsocket-reachable=%v\n", b, len(hidden), strings.Join(names, ","), dialErr == nil)
	return nil
}

func TestHidePathsAndBindOver(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a mount namespace")
	}
	dir := t.TempDir()
	resolve := filepath.Join(dir, "resolve")
	if err := os.Mkdir(resolve, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(resolve, "stub-resolv.conf"), []byte("nameserver 127.0.0.53\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "private.conf"), []byte("nameserver 198.18.0.2\n"), 0o644)
	os.Symlink(filepath.Join(resolve, "stub-resolv.conf"), filepath.Join(dir, "resolv.conf"))
	// The same directory twice, once through a symlink: covered once.
	os.Symlink(resolve, filepath.Join(dir, "nscd-link"))
	l, err := net.Listen("unix", filepath.Join(resolve, "io.systemd.Resolve"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), hideChildEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	want := "resolv.conf=\"nameserver 198.18.0.2\\n\"\nhidden=1\nleft=stub-resolv.conf\nsocket-reachable=false\n"
	if string(out) != want {
		t.Errorf("in the child:\n%s\nwant:\n%s", out, want)
	}
	// Nothing changed outside.
	if b, _ := os.ReadFile(filepath.Join(dir, "resolv.conf")); string(b) != "nameserver 127.0.0.53\n" {
		t.Errorf("resolv.conf outside changed: %q", b)
	}
}
