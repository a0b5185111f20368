package appns

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// BindNetNS bind-mounts the network namespace at path (a file, created if
// missing) in the caller's mount namespace, as "ip netns add" does, so that
// nsenter --net=PATH and "ip netns exec" can enter it. The returned function
// unmounts it and removes the file if BindNetNS created it. Needs root: the
// mount is made in the host's mount namespace.
func (n *Namespace) BindNetNS(path string) (undo func() error, err error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("keep the namespace at %s: needs root (the bind mount is made in the host's mount namespace)", path)
	}
	created := false
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	switch {
	case err == nil:
		created = true
		f.Close()
	case errors.Is(err, os.ErrExist):
	default:
		return nil, fmt.Errorf("keep the namespace at %s: %w: its directory must exist", path, err)
	}
	if err := unix.Mount(n.NetNSPath(), path, "none", unix.MS_BIND, ""); err != nil {
		if created {
			os.Remove(path)
		}
		return nil, fmt.Errorf("keep the namespace at %s: bind mount: %w", path, err)
	}
	return func() error {
		var errs []error
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", path, err))
		}
		if created {
			if err := os.Remove(path); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", path, err))
			}
		}
		return errors.Join(errs...)
	}, nil
}

// ErrNetNSInUse is returned by ClearStaleNetNS when the namespace at the
// path still has processes: another tungate serves it, or something entered
// it.
var ErrNetNSInUse = errors.New("a network namespace with live processes is mounted there")

// ClearStaleNetNS removes a network namespace left bind-mounted at path by
// an instance that was killed (kill -9 leaves the mount behind): one with
// no process in it, so no tungate serves it. It unmounts it and removes
// the file, and reports whether it did. A path that is not a mounted
// namespace is left alone (BindNetNS mounts over a plain file); one whose
// namespace still has processes is an error wrapping ErrNetNSInUse.
func ClearStaleNetNS(path string) (cleared bool, err error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("check %s for a namespace left behind: %w", path, err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		return false, nil
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false, fmt.Errorf("check %s for a namespace left behind: %w", path, err)
	}
	pids, err := pidsIn(st.Dev, st.Ino)
	if err != nil {
		return false, err
	}
	if len(pids) > 0 {
		return false, fmt.Errorf("keep the namespace at %s: %w (pid %d): stop the tungate that serves it, or choose another path", path, ErrNetNSInUse, pids[0])
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		return false, fmt.Errorf("remove the namespace left at %s: unmount: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return true, fmt.Errorf("remove the namespace left at %s: %w", path, err)
	}
	return true, nil
}
