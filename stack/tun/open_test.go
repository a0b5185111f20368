package tun

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestCheckName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		wantErr string
	}{
		{"tg0", ""},
		{"", ""},
		{"exactly15bytes_", ""},
		{"sixteen_bytes_xx", "is 16 bytes: Linux interface names have at most 15"},
		{"a/b", "not a valid interface name"},
		{"a b", "not a valid interface name"},
		{"..", "not a valid interface name"},
	}
	for _, tt := range tests {
		err := checkName(tt.name)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("checkName(%q) = %v, want nil", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("checkName(%q) = %v, want error containing %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestOpenCreatesInNetNS(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	d := openDevice(t, Config{Name: "tgtest0", FD: -1, NetNS: ns})
	if !d.Created() || d.Name() != "tgtest0" || d.VnetHdr() {
		t.Fatalf("Created=%v Name=%q VnetHdr=%v, want true tgtest0 false", d.Created(), d.Name(), d.VnetHdr())
	}
	inside := netlinkInNS(t, ns)
	link, err := inside.LinkByName("tgtest0")
	if err != nil {
		t.Fatalf("device not in netns %s: %v", ns, err)
	}
	if tt, ok := link.(*netlink.Tuntap); !ok || tt.Mode != netlink.TUNTAP_MODE_TUN {
		t.Fatalf("link is %T %+v, want a TUN", link, link)
	}
	if linkExists(t, netlinkInNS(t, ""), "tgtest0") {
		t.Fatal("device also visible in the test's own namespace")
	}
	flags, err := unix.FcntlInt(uintptr(d.FD()), unix.F_GETFL, 0)
	if err != nil || flags&unix.O_NONBLOCK == 0 {
		t.Errorf("fd flags %#x, %v: want O_NONBLOCK", flags, err)
	}
	fdFlags, err := unix.FcntlInt(uintptr(d.FD()), unix.F_GETFD, 0)
	if err != nil || fdFlags&unix.FD_CLOEXEC == 0 {
		t.Errorf("fd flags %#x, %v: want FD_CLOEXEC", fdFlags, err)
	}

	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if linkExists(t, inside, "tgtest0") {
		t.Fatal("device still exists after Close")
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestCloseDeletesPersisted checks that a created device someone made
// persistent meanwhile is still removed by Close.
func TestCloseDeletesPersisted(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	d := openDevice(t, Config{Name: "tgtest0", FD: -1, NetNS: ns})
	if err := unix.IoctlSetInt(d.FD(), unix.TUNSETPERSIST, 1); err != nil {
		t.Fatalf("TUNSETPERSIST: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if linkExists(t, netlinkInNS(t, ns), "tgtest0") {
		t.Fatal("persisted device still exists after Close")
	}
}

func TestOpenKernelPicksName(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	d := openDevice(t, Config{FD: -1, NetNS: ns})
	if !strings.HasPrefix(d.Name(), "tun") || !d.Created() {
		t.Fatalf("Name=%q Created=%v, want tunN true", d.Name(), d.Created())
	}
	if !linkExists(t, netlinkInNS(t, ns), d.Name()) {
		t.Fatalf("%s not in netns", d.Name())
	}
}

func TestOpenNetNSByPath(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	d := openDevice(t, Config{Name: "tgtest0", FD: -1, NetNS: filepath.Join(namedNetNSDir, ns)})
	if !linkExists(t, netlinkInNS(t, ns), d.Name()) {
		t.Fatal("device not created in the namespace given by path")
	}
	f := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Config{Name: "tgtest1", FD: -1, NetNS: f})
	wantErrText(t, err, "is not a network namespace")
}

func TestOpenMissingNetNS(t *testing.T) {
	t.Parallel()
	requireSystem(t)
	cases := []struct{ spec, want string }{
		{"tgtest-nope", `netns "tgtest-nope": no such network namespace: create it with "ip netns add tgtest-nope" or give a path such as /proc/PID/ns/net`},
		// "ip netns add" takes no path: a path gets no such advice.
		{"/proc/999999/ns/net", `netns "/proc/999999/ns/net": no process 999999: give the /proc/PID/ns/net of a running process, or a name under /run/netns`},
		{"/run/tgtest-nope/ns", `netns "/run/tgtest-nope/ns": no such file: give the path of a network namespace`},
	}
	for _, tc := range cases {
		_, err := Open(Config{Name: "tgtest0", FD: -1, NetNS: tc.spec})
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("got %v\nwant %s", err, tc.want)
		}
	}
}

func TestOpenNameUsedByVeth(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	runIP(t, "-n", ns, "link", "add", "tgtest0", "type", "veth", "peer", "name", "tgtest1")
	_, err := Open(Config{Name: "tgtest0", FD: -1, NetNS: ns})
	if !errors.Is(err, ErrNameInUse) {
		t.Fatalf("got %v, want ErrNameInUse", err)
	}
	wantErrText(t, err, `tun "tgtest0": device name in use by a non-TUN interface (veth): pick another name with --device tun://NAME`)
}

func TestOpenNameUsedByTAP(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	runIP(t, "-n", ns, "tuntap", "add", "dev", "tgtest0", "mode", "tap")
	_, err := Open(Config{Name: "tgtest0", FD: -1, NetNS: ns})
	if !errors.Is(err, ErrNameInUse) {
		t.Fatalf("got %v, want ErrNameInUse", err)
	}
	wantErrText(t, err, "by a TAP interface")
}

func TestOpenBusy(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	openDevice(t, Config{Name: "tgtest0", FD: -1, NetNS: ns})
	_, err := Open(Config{Name: "tgtest0", FD: -1, NetNS: ns})
	if !errors.Is(err, ErrNameInUse) {
		t.Fatalf("got %v, want ErrNameInUse", err)
	}
	wantErrText(t, err, "already open by another process")
}

func TestOpenAttachesPersistent(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	runIP(t, "-n", ns, "tuntap", "add", "dev", "tgtest0", "mode", "tun")
	d := openDevice(t, Config{Name: "tgtest0", FD: -1, NetNS: ns})
	if d.Created() {
		t.Fatal("Created() = true for a persistent device made by ip tuntap")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if !linkExists(t, netlinkInNS(t, ns), "tgtest0") {
		t.Fatal("Close deleted a persistent device it did not create")
	}
}

func TestOpenMultiQueuePersistent(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	runIP(t, "-n", ns, "tuntap", "add", "dev", "tgtest0", "mode", "tun", "multi_queue")
	d := openDevice(t, Config{Name: "tgtest0", FD: -1, NetNS: ns})
	if d.Created() {
		t.Fatal("Created() = true for a persistent device")
	}
}

func TestOpenOffload(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	d := openDevice(t, Config{Name: "tgtest0", FD: -1, NetNS: ns, Offload: true})
	if !d.VnetHdr() || d.OffloadErr() != nil {
		t.Fatalf("VnetHdr=%v OffloadErr=%v, want true nil on kernel 6.x", d.VnetHdr(), d.OffloadErr())
	}
	_, flags, err := getIff(d.FD())
	if err != nil || flags&unix.IFF_VNET_HDR == 0 {
		t.Fatalf("TUNGETIFF flags %#x, %v: want IFF_VNET_HDR", flags, err)
	}
	size, err := unix.IoctlGetInt(d.FD(), unix.TUNGETVNETHDRSZ)
	if err != nil || size != VnetHdrLen {
		t.Fatalf("TUNGETVNETHDRSZ = %d, %v, want %d", size, err, VnetHdrLen)
	}
}

func TestOpenFD(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	fd := rawTUN(t, ns, "tgtest0", unix.IFF_TUN|unix.IFF_NO_PI)
	// No NetNS: Open must find the device's namespace by itself.
	d, err := Open(Config{FD: fd})
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	defer d.Close()
	if d.Name() != "tgtest0" || d.Created() || d.VnetHdr() || d.FD() != fd {
		t.Fatalf("Name=%q Created=%v VnetHdr=%v FD=%d", d.Name(), d.Created(), d.VnetHdr(), d.FD())
	}
	if err := d.Configure(NetConfig{MTU: 1300}); err != nil {
		t.Fatal(err)
	}
	link, err := netlinkInNS(t, ns).LinkByName("tgtest0")
	if err != nil || link.Attrs().MTU != 1300 {
		t.Fatalf("link %v, %v: want MTU 1300 in the fd's namespace", link, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// The fd was the device's only one, so the device goes when it closes.
	// A child that another test forks at that moment holds a copy of the
	// fd until its exec: wait for that, not for ever.
	nl := netlinkInNS(t, ns)
	for deadline := time.Now().Add(2 * time.Second); linkExists(t, nl, "tgtest0"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("fd not closed by Close: its device still exists 2 s later")
		}
	}
}

func TestOpenFDVnetHdr(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	fd := rawTUN(t, ns, "tgtest0", unix.IFF_TUN|unix.IFF_NO_PI|unix.IFF_VNET_HDR)
	d, err := Open(Config{FD: fd})
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	defer d.Close()
	if !d.VnetHdr() {
		t.Fatal("VnetHdr() = false for an fd with IFF_VNET_HDR")
	}
}

func TestOpenFDRejects(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	tests := []struct {
		name    string
		fd      func(t *testing.T) int
		notTUN  bool
		wantErr string
	}{
		{"regular file", func(t *testing.T) int {
			f, err := os.CreateTemp(t.TempDir(), "x")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			return int(f.Fd())
		}, true, ": not a TUN device: pass an fd opened on /dev/net/tun with TUNSETIFF"},
		{"pipe", func(t *testing.T) int {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close(); w.Close() })
			return int(r.Fd())
		}, true, ": not a TUN device: pass an fd opened on /dev/net/tun with TUNSETIFF"},
		{"clone device without TUNSETIFF", func(t *testing.T) int {
			f, err := os.OpenFile(cloneDevice, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			return int(f.Fd())
		}, true, ": not a TUN device"},
		{"TAP", func(t *testing.T) int {
			fd := rawTUN(t, ns, "tgtap0", unix.IFF_TAP|unix.IFF_NO_PI)
			t.Cleanup(func() { unix.Close(fd) })
			return fd
		}, true, `"tgtap0" is a TAP device`},
		{"packet info", func(t *testing.T) int {
			fd := rawTUN(t, ns, "tgpi0", unix.IFF_TUN)
			t.Cleanup(func() { unix.Close(fd) })
			return fd
		}, false, `tun "tgpi0" was opened without IFF_NO_PI`},
		{"closed fd", func(t *testing.T) int {
			return 1 << 20
		}, false, "bad file descriptor: the parent process must pass this fd open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd := tt.fd(t)
			d, err := Open(Config{FD: fd})
			if err == nil {
				d.Close()
				t.Fatal("Open succeeded")
			}
			if errors.Is(err, ErrNotTUN) != tt.notTUN {
				t.Errorf("errors.Is(%v, ErrNotTUN) = %v, want %v", err, !tt.notTUN, tt.notTUN)
			}
			wantErrText(t, err, tt.wantErr)
		})
	}
}

// TestOpenPermissionDenied runs Open in a copy of the test binary started
// without CAP_NET_ADMIN, which must get the permission hint.
func TestOpenPermissionDenied(t *testing.T) {
	t.Parallel()
	if os.Getenv("TGTEST_NO_NET_ADMIN") == "1" {
		_, err := Open(Config{Name: "tgtestperm0", FD: -1})
		fmt.Printf("OPEN ERROR: %v\n", err)
		return
	}
	requireSystem(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("skipping: setpriv (util-linux) is not installed")
	}
	cmd := exec.Command(setpriv, "--bounding-set=-net_admin", "--inh-caps=-net_admin", "--",
		os.Args[0], "-test.run=^TestOpenPermissionDenied$", "-test.v")
	cmd.Env = append(os.Environ(), "TGTEST_NO_NET_ADMIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	want := `OPEN ERROR: open tun "tgtestperm0": permission denied: run as root or give CAP_NET_ADMIN`
	if !strings.Contains(string(out), want) {
		t.Fatalf("child output:\n%s\nwant a line starting %q", out, want)
	}
}
