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
