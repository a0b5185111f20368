package netlab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// modulePath is the module whose commands netlab builds.
const modulePath = "github.com/tungate/tungate"

// Import paths of the programs netlab builds.
const (
	tungatePackage = modulePath + "/cmd/tungate"
	peerPackage    = modulePath + "/cmd/internal/netlab/peer"
)

// binaries is the build cache: each program is built at most once per test
// binary run, into one directory that Main removes at the end. It is package
// state because "once per run" spans all the tests of a binary.
var binaries buildCache

type buildCache struct {
	mu     sync.Mutex
	dir    string
	builds map[string]*build
}

type build struct {
	once sync.Once
	path string
	err  error
}

// Main runs the tests and then removes the binaries netlab built. Call it
// from TestMain: func TestMain(m *testing.M) { netlab.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	binaries.mu.Lock()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	binaries.mu.Unlock()
	os.Exit(code)
}

// TungatePath returns the path of a tungate binary built from this module's
// source, building it on first use. A build failure fails the test.
func TungatePath(t testing.TB) string {
	t.Helper()
	return mustBuild(t, tungatePackage)
}

// PeerPath returns the path of the peer program (./peer), built on first use.
func PeerPath(t testing.TB) string {
	t.Helper()
	return mustBuild(t, peerPackage)
}

func mustBuild(t testing.TB, pkg string) string {
	t.Helper()
	RequireBinary(t, "go")
	p, err := binaries.get(pkg)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	return p
}

// get returns the built program pkg, building it the first time.
func (c *buildCache) get(pkg string) (string, error) {
	c.mu.Lock()
	if c.builds == nil {
		c.builds = make(map[string]*build)
	}
	b := c.builds[pkg]
	if b == nil {
		b = &build{}
		c.builds[pkg] = b
	}
	c.mu.Unlock()
	b.once.Do(func() {
		dir, err := c.outDir()
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, path.Base(pkg))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// The build runs where the test does, which is inside the module.
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.path, pkg)
		// As `make build` does: tungate drops its capabilities in every
		// thread, which the Go runtime refuses in a binary with cgo.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		_, b.err = runOutput(ctx, cmd)
	})
	return b.path, b.err
}

// outDir creates the output directory on first use. Other users must be able
// to run what is in it: tests drop privileges to check permission errors.
func (c *buildCache) outDir() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir != "" {
		return c.dir, nil
	}
	dir, err := os.MkdirTemp("", "netlab-bin-")
	if err != nil {
		return "", fmt.Errorf("create build directory: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("make build directory readable: %w", err)
	}
	c.dir = dir
	return dir, nil
}
