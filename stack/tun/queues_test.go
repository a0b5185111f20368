package tun

import (
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestOpenQueues(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	d := openDevice(t, Config{Name: "tgtest0", FD: -1, NetNS: ns, Offload: true, Queues: 3})
	fds := d.QueueFDs()
	if len(fds) != 3 || fds[0] != d.FD() || d.QueueErr() != nil {
		t.Fatalf("QueueFDs = %v (FD %d), QueueErr = %v: want 3 fds, FD first, no error", fds, d.FD(), d.QueueErr())
	}
	for i, fd := range fds {
		name, flags, err := getIff(fd)
		if err != nil || name != "tgtest0" || flags&unix.IFF_MULTI_QUEUE == 0 || flags&unix.IFF_VNET_HDR == 0 {
			t.Errorf("queue %d: TUNGETIFF %q flags %#x, %v: want tgtest0 with IFF_MULTI_QUEUE|IFF_VNET_HDR", i, name, flags, err)
		}
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil || fl&unix.O_NONBLOCK == 0 {
			t.Errorf("queue %d: fd flags %#x, %v: want O_NONBLOCK", i, fl, err)
		}
	}
	link, err := netlinkInNS(t, ns).LinkByName("tgtest0")
	if err != nil {
		t.Fatal(err)
	}
	if tt, ok := link.(*netlink.Tuntap); !ok || tt.Flags&netlink.TUNTAP_MULTI_QUEUE == 0 || tt.Queues != 3 {
		t.Fatalf("link %+v: want a multi-queue TUN with 3 queues", link)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if linkExists(t, netlinkInNS(t, ns), "tgtest0") {
		t.Fatal("device still exists after Close: a queue was left open")
	}
}

func TestOpenQueuesKernelPicksName(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	d := openDevice(t, Config{FD: -1, NetNS: ns, Queues: 2})
	if len(d.QueueFDs()) != 2 || d.QueueErr() != nil {
		t.Fatalf("QueueFDs = %v, QueueErr = %v: want 2 queues on %q", d.QueueFDs(), d.QueueErr(), d.Name())
	}
}

func TestOpenQueuesPersistentSingle(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	runIP(t, "-n", ns, "tuntap", "add", "dev", "tgtest0", "mode", "tun")
	d := openDevice(t, Config{Name: "tgtest0", FD: -1, NetNS: ns, Queues: 4})
	if len(d.QueueFDs()) != 1 {
		t.Fatalf("QueueFDs = %v: want the one queue a single-queue device has", d.QueueFDs())
	}
	wantErrText(t, d.QueueErr(), "without multi_queue", "1 queue of the 4", "ip tuntap add tgtest0 mode tun multi_queue")
}

func TestOpenQueuesPersistentMulti(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	runIP(t, "-n", ns, "tuntap", "add", "dev", "tgtest0", "mode", "tun", "multi_queue")
	d := openDevice(t, Config{Name: "tgtest0", FD: -1, NetNS: ns, Offload: true, Queues: 2})
	if len(d.QueueFDs()) != 2 || d.QueueErr() != nil || d.Created() {
		t.Fatalf("QueueFDs = %v, QueueErr = %v, Created = %v: want 2 queues on the persistent device", d.QueueFDs(), d.QueueErr(), d.Created())
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if !linkExists(t, netlinkInNS(t, ns), "tgtest0") {
		t.Fatal("Close deleted a persistent device it did not create")
	}
}

func TestOpenQueuesFD(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	fd := rawTUN(t, ns, "tgtest0", unix.IFF_TUN|unix.IFF_NO_PI)
	d, err := Open(Config{FD: fd, Queues: 2})
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	defer d.Close()
	if len(d.QueueFDs()) != 1 {
		t.Fatalf("QueueFDs = %v: want the inherited fd only", d.QueueFDs())
	}
	wantErrText(t, d.QueueErr(), "fd://", "1 queue inherited of the 2")
}

func TestOpenQueuesBad(t *testing.T) {
	t.Parallel()
	for _, n := range []int{-1, MaxQueues + 1} {
		_, err := Open(Config{Name: "tgtest0", FD: -1, Queues: n})
		wantErrText(t, err, "queues: want 1 to 256")
	}
}
