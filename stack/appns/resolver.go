package appns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// NSSwitchPath is the file glibc reads to choose its name services.
const NSSwitchPath = "/etc/nsswitch.conf"

// ResolverSockets lists what the command must not reach, so that every
// name it resolves goes through the namespace's resolver (and so through
// tungate, and a proxy if there is one):
//
//   - /run/nscd and /var/run/nscd: nscd's socket. glibc asks nscd before
//     any NSS module, whatever nsswitch.conf says, and nscd resolves on the
//     host's network.
//   - /run/systemd/resolve: systemd-resolved's varlink sockets
//     (io.systemd.Resolve, which nss-resolve uses) and its stub files.
//
// The D-Bus system bus (/run/dbus/system_bus_socket), through which
// resolved also answers, stays reachable: hiding it breaks far more than
// name resolution, and glibc does not resolve over it once nsswitch.conf
// has no "resolve" (see NSSwitchConf). A program that asks resolved over
// D-Bus itself (resolvectl) still can.
func ResolverSockets() []string {
	return []string{"/run/nscd", "/var/run/nscd", "/run/systemd/resolve"}
}

// NSSwitchConf returns host (the host's nsswitch.conf) with its hosts line
// replaced by "hosts: files dns", or with that line added if it has none:
// /etc/hosts, then DNS to the resolver in /etc/resolv.conf, and no module
// (resolve, mdns, myhostname, mymachines, sss, nis...) that answers some
// other way. Every other line is kept as it is.
func NSSwitchConf(host []byte) []byte {
	const hosts = "hosts: files dns"
	var out bytes.Buffer
	found := false
	for line := range bytes.Lines(host) {
		f := bytes.Fields(line)
		if len(f) > 0 && (bytes.Equal(f[0], []byte("hosts:")) || bytes.Equal(f[0], []byte("hosts")) && len(f) > 1 && f[1][0] == ':') {
			if !found {
				out.WriteString(hosts + "\n")
			}
			found = true
			continue
		}
		out.Write(line)
		if !bytes.HasSuffix(line, []byte("\n")) {
			out.WriteByte('\n')
		}
	}
	if !found {
		out.WriteString(hosts + "\n")
	}
	return out.Bytes()
}

// hidePaths covers each path that exists, in this mount namespace only:
// a directory with an empty tmpfs, anything else with /dev/null (a socket
// there then refuses connections). It returns the paths it covered, as
// resolved.
func hidePaths(paths []string) ([]string, error) {
	var hidden []string
	for _, p := range paths {
		real, err := filepath.EvalSymlinks(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return hidden, fmt.Errorf("hide %s from the command: %w", p, err)
		}
		if slices.Contains(hidden, real) {
			continue // /var/run/nscd is /run/nscd on most systems
		}
		fi, err := os.Stat(real)
		if err != nil {
			return hidden, fmt.Errorf("hide %s from the command: %w", p, err)
		}
		if fi.IsDir() {
			err = unix.Mount("tungate-hidden", real, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=64k")
		} else {
			err = unix.Mount("/dev/null", real, "", unix.MS_BIND, "")
		}
		if err != nil {
			return hidden, fmt.Errorf("hide %s from the command: mount over it: %w", real, err)
		}
		hidden = append(hidden, real)
	}
	return hidden, nil
}

// bindOver mounts src over target (a file, symlinks resolved), in this
// mount namespace only. If target lies in a directory hidePaths covered, an
// empty file is made there first, in the covering tmpfs: on systemd hosts
// /etc/resolv.conf points into /run/systemd/resolve.
func bindOver(src, target string, hidden []string) error {
	inHidden := slices.ContainsFunc(hidden, func(h string) bool { return strings.HasPrefix(target, h+"/") })
	if _, err := os.Stat(target); inHidden && errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return fmt.Errorf("bind-mount %s over %s: %w", src, target, err)
		}
		if err := os.WriteFile(target, nil, 0o644); err != nil {
			return fmt.Errorf("bind-mount %s over %s: %w", src, target, err)
		}
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mount %s over %s: %w", src, target, err)
	}
	return nil
}
