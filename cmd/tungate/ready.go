package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// readyConfig is how tungate tells a script or a service manager that it
// serves: a line on --ready-fd, and sd_notify(3) READY=1 to $NOTIFY_SOCKET
// when the service manager set it (systemd's Type=notify).
type readyConfig struct {
	fd int // -1: no --ready-fd
}

// addReadyFlags registers --ready-fd.
func addReadyFlags(fs *pflag.FlagSet, c *readyConfig) {
	c.fd = -1
	fs.Var(readyFD{&c.fd}, "ready-fd", "once serving (the device exists, has its addresses and routes, and flows are forwarded), write \"ready\\n\" to file descriptor `N` and close it")
}

// validate checks that the descriptor is open now, so that a script that
// forgot to pass it hears of it at once, not when tungate is ready. It
// also marks it close-on-exec: a child (the namespace setup process of
// `tungate run`) that kept it open would keep the reader from seeing EOF.
func (c *readyConfig) validate() error {
	if c.fd < 0 {
		return nil
	}
	flags, err := unix.FcntlInt(uintptr(c.fd), unix.F_GETFD, 0)
	if err != nil {
		return usageErrorf("--ready-fd %d: file descriptor %d is not open: pass it, for example tungate --ready-fd 3 3>file", c.fd, c.fd)
	}
	if _, err := unix.FcntlInt(uintptr(c.fd), unix.F_SETFD, flags|unix.FD_CLOEXEC); err != nil {
		return fmt.Errorf("--ready-fd %d: set close-on-exec: %w", c.fd, err)
	}
	return nil
}

// signalReady says that tungate serves: READY=1 to the service manager, if
// any, and the line on --ready-fd, which it then closes. Failures are
// logged, not fatal: tungate serves either way.
func (c *readyConfig) signalReady(log *slog.Logger) {
	if err := sdNotify("READY=1"); err != nil {
		log.Warn("could not tell the service manager that tungate is ready", "err", err)
	}
	if c.fd < 0 {
		return
	}
	f := os.NewFile(uintptr(c.fd), "ready-fd")
	_, err := f.WriteString("ready\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	c.fd = -1 // closed: never again
	if err != nil {
		log.Warn("could not write to --ready-fd", "err", err)
	}
}

// signalStopping tells the service manager, if any, that tungate stops.
func signalStopping(log *slog.Logger) {
	if err := sdNotify("STOPPING=1"); err != nil {
		log.Warn("could not tell the service manager that tungate stops", "err", err)
	}
}

// sdNotify sends state to the datagram socket named by $NOTIFY_SOCKET, as
// sd_notify(3) does; it does nothing when the variable is unset. A name
// starting with '@' is in the abstract namespace (Go's net package maps it).
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] != '/' && path[0] != '@' {
		return fmt.Errorf("NOTIFY_SOCKET=%q: want an absolute path or an @abstract name", path)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", state, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", state, err)
	}
	return nil
}

// readyFD is the value of --ready-fd; it shows no default.
type readyFD struct{ p *int }

func (v readyFD) String() string {
	if v.p == nil || *v.p < 0 {
		return ""
	}
	return strconv.Itoa(*v.p)
}

func (v readyFD) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return errors.New("want a file descriptor number, such as 3")
	}
	*v.p = n
	return nil
}

func (v readyFD) Type() string { return "N" }
