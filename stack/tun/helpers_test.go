package tun

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// requireSystem skips tests that create namespaces and TUN devices when the
// machine cannot run them.
func requireSystem(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces and TUN devices")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: the ip command (iproute2) is not installed")
	}
	if _, err := os.Stat(cloneDevice); err != nil {
		t.Skipf("skipping: %v (load the tun module)", err)
	}
}

// newNetNS creates a network namespace named after the test and process, so
// parallel tests and runs never share one, and removes it at cleanup.
func newNetNS(t *testing.T) string {
	t.Helper()
	requireSystem(t)
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, t.Name())
	name := fmt.Sprintf("tgtest-%d-%s", os.Getpid(), clean)
	runIP(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}

func runIP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// netlinkInNS opens a netlink socket in the named namespace ("" for ours).
func netlinkInNS(t *testing.T, ns string) *netlink.Handle {
	t.Helper()
	var nl *netlink.Handle
	var err error
	if ns == "" {
		nl, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	} else {
		h, openErr := openNetNS(ns)
		if openErr != nil {
			t.Fatal(openErr)
		}
		defer h.Close()
		nl, err = netlinkIn(h)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nl.Close)
	return nl
}

// linkExists reports whether name exists in the namespace of nl.
func linkExists(t *testing.T, nl *netlink.Handle, name string) bool {
	t.Helper()
	_, err := nl.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return false
	}
	if err != nil {
		t.Fatalf("look up %s: %v", name, err)
	}
	return true
}

// openDevice opens cfg and closes the device at cleanup.
func openDevice(t *testing.T, cfg Config) *Device {
	t.Helper()
	d, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// rawTUN opens /dev/net/tun in namespace ns and attaches it to name with
// flags, bypassing Open, as a parent process handing down an fd would.
func rawTUN(t *testing.T, ns, name string, flags uint16) int {
	t.Helper()
	h, err := openNetNS(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fd := -1
	err = inNetNS(h, func() error {
		var err error
		if fd, err = unix.Open(cloneDevice, unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
		_, err = setIff(fd, name, flags)
		return err
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		t.Fatalf("raw TUNSETIFF %s: %v", name, err)
	}
	return fd
}

// wantErrText fails unless err is non-nil and contains every part.
func wantErrText(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}
