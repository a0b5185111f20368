package tun

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// namedNetNSDir is where "ip netns add NAME" bind-mounts named namespaces.
const namedNetNSDir = "/run/netns"

// openNetNS opens the namespace that spec names: a name under /run/netns, or
// a path if spec contains a slash. The caller closes the handle.
func openNetNS(spec string) (netns.NsHandle, error) {
	path := spec
	if !strings.Contains(spec, "/") {
		path = filepath.Join(namedNetNSDir, spec)
	}
	ns, err := netns.GetFromPath(path)
	if errors.Is(err, fs.ErrNotExist) {
		return netns.None(), missingNetNS(spec, path)
	}
	if err != nil {
		return netns.None(), fmt.Errorf("netns %q: open %s: %w", spec, path, err)
	}
	// Checked here so that a wrong path gets a clear error rather than an
	// EINVAL from setns deep inside Open.
	kind, err := unix.IoctlRetInt(int(ns), unix.NS_GET_NSTYPE)
	if err != nil || kind != unix.CLONE_NEWNET {
		ns.Close()
		return netns.None(), fmt.Errorf("netns %q: %s is not a network namespace: give a name under %s or a path such as /proc/PID/ns/net", spec, path, namedNetNSDir)
	}
	return ns, nil
}

// missingNetNS explains a namespace spec that names nothing: a name is
// created with "ip netns add", but a path is not (ip would refuse one).
func missingNetNS(spec, path string) error {
	if path != spec {
		return fmt.Errorf("netns %q: no such network namespace: create it with \"ip netns add %s\" or give a path such as /proc/PID/ns/net", spec, spec)
	}
	if pid, ok := strings.CutPrefix(spec, "/proc/"); ok {
		if pid, ok = strings.CutSuffix(pid, "/ns/net"); ok && pid != "" && strings.Trim(pid, "0123456789") == "" {
			return fmt.Errorf("netns %q: no process %s: give the /proc/PID/ns/net of a running process, or a name under %s", spec, pid, namedNetNSDir)
		}
	}
	return fmt.Errorf("netns %q: no such file: give the path of a network namespace (such as /proc/PID/ns/net of a running process, or a bind mount made by \"ip netns add\"), or a name under %s", spec, namedNetNSDir)
}

// inNetNS runs fn on an OS thread that is inside namespace ns, leaving the
// calling goroutine's thread untouched. If ns is not open, fn runs on the
// calling goroutine in the current namespace.
//
// fn runs on a goroutine of its own, locked to its thread. If that thread
// cannot be switched back to its original namespace, the goroutine exits
// without unlocking: the Go runtime then terminates the thread instead of
// handing it to other goroutines, which would otherwise run (and open
// sockets) in the wrong namespace without knowing it. Running on the
// caller's goroutine would make that caller the one stuck on a bad thread.
func inNetNS(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			// setns either switches or fails without changing anything.
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter netns: %w", err)
			return
		}
		fnErr := fn()
		if err := netns.Set(orig); err != nil {
			// The thread stays locked and dies with this goroutine (see
			// above). What fn made is bound to its namespace and stays
			// valid; the failure is still reported, as something is wrong.
			done <- errors.Join(fnErr, fmt.Errorf("return to original netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		done <- fnErr
	}()
	return <-done
}

// netlinkIn opens a netlink socket inside namespace ns (the current one if ns
// is not open). The socket keeps working there after the thread leaves.
func netlinkIn(ns netns.NsHandle) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := inNetNS(ns, func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		if h != nil {
			h.Close()
		}
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	return h, nil
}
