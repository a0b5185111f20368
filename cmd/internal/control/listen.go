package control

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrInUse is returned by ListenUnix when another live process serves the
// socket's path.
var ErrInUse = errors.New("in use by a running process")

// ListenUnix listens on a unix socket at path, mode 0600, making its
// directory (mode 0700) if missing. A socket file left by a process that
// died is replaced (one that a live process answers on is ErrInUse). The
// listener answers only processes in the caller's own network namespace:
// the control socket is a path in the file system, which an app in
// another namespace (tungate run's CMD, an app namespace) may share. The
// file is removed when the listener closes.
func ListenUnix(path string, log *slog.Logger) (net.Listener, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	self, err := netnsCookie(ln)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: own network namespace: %w", path, err)
	}
	return &sameNetNS{UnixListener: ln, netns: self, log: log}, nil
}

// removeStale removes a socket file at path that nobody answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("control socket %s: %w", path, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("control socket %s: exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: %w (another tungate? give --control PATH or --control none)", path, ErrInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket %s: remove the stale socket: %w", path, err)
	}
	return nil
}

// sameNetNS accepts connections only from sockets in the network
// namespace whose cookie is netns; others are closed at once. The kernel
// makes the accepted end of a unix stream connection in the connecting
// socket's namespace, so its SO_NETNS_COOKIE names the peer's namespace.
// That needs no access to the peer's /proc entry, which tungate loses
// when it drops its capabilities.
type sameNetNS struct {
	*net.UnixListener
	netns uint64
	log   *slog.Logger
}

// Accept implements net.Listener.
func (l *sameNetNS) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		ns, err := netnsCookie(c)
		if err == nil && ns != l.netns {
			err = fmt.Errorf("the peer is in network namespace %d, not %d", ns, l.netns)
		}
		if err == nil {
			return c, nil
		}
		l.log.Debug("control socket: connection refused", "err", err)
		c.Close()
	}
}

// netnsCookie returns the cookie of the network namespace that socket c
// belongs to (SO_NETNS_COOKIE, Linux 5.14).
func netnsCookie(c syscall.Conn) (uint64, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cookie uint64
	var optErr error
	if err := raw.Control(func(fd uintptr) {
		cookie, optErr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	}); err != nil {
		return 0, err
	}
	if optErr != nil {
		return 0, fmt.Errorf("SO_NETNS_COOKIE: %w", optErr)
	}
	return cookie, nil
}

// Guard says which flow destinations would reach a TCP listener of the
// API from the forwarder's own sockets, so that the forwarder can refuse
// them.
type Guard struct {
	addr netip.AddrPort
	// localAddrs lists the host's addresses; a variable for tests.
	localAddrs func() ([]net.Addr, error)
}

// NewGuard returns the Guard of a TCP listener at addr.
func NewGuard(addr netip.AddrPort) *Guard {
	return &Guard{addr: netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port()), localAddrs: net.InterfaceAddrs}
}

// Reaches reports whether a TCP dial to dst from this host could reach the
// listener: its port on its address, on any loopback or unspecified
// address, or, for a listener on every address, on any of the host's.
func (g *Guard) Reaches(dst netip.AddrPort) bool {
	if g == nil || dst.Port() != g.addr.Port() {
		return false
	}
	a := dst.Addr().Unmap()
	if a == g.addr.Addr() || a.IsLoopback() || a.IsUnspecified() {
		return true
	}
	if !g.addr.Addr().IsUnspecified() {
		return false
	}
	addrs, err := g.localAddrs()
	if err != nil {
		return true // cannot tell: refuse
	}
	for _, la := range addrs {
		if n, ok := la.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a {
				return true
			}
		}
	}
	return false
}
