package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tungate/tungate/forwarder/dns"
	"github.com/tungate/tungate/stack/appns"
)

// etcNetNSDir is where `ip netns exec NAME` looks for files to bind-mount
// over /etc for the namespace NAME (/etc/netns/NAME/resolv.conf over
// /etc/resolv.conf, and so on).
const etcNetNSDir = "/etc/netns"

// namedNetNSDirs are where `ip netns add NAME` puts named namespaces
// (/var/run is usually a link to /run).
var namedNetNSDirs = []string{"/run/netns", "/var/run/netns"}

// namedNetNS returns the name of the named namespace that spec (--netns
// NAME|PATH, or --netns-path PATH) is: a bare name, or a path directly
// under /run/netns.
func namedNetNS(spec string) (string, bool) {
	name := spec
	if strings.Contains(spec, "/") {
		dir, base := filepath.Split(filepath.Clean(spec))
		if !slices.Contains(namedNetNSDirs, filepath.Clean(dir)) {
			return "", false
		}
		name = base
	}
	if name == "" || name == "." || name == ".." {
		return "", false
	}
	return name, true
}

// netnsEtc is what tungate wrote under /etc/netns/NAME so that `ip netns
// exec NAME CMD` resolves names through tungate's resolver: the files, and
// the directories it had to make for them. remove undoes exactly that.
type netnsEtc struct {
	files []string
	// dirs are the directories made, deepest first.
	dirs []string
	log  *slog.Logger
}

// writeNetNSDNS gives the namespace that spec names the DNS of tungate's
// resolver: for a named namespace it writes base/NAME/resolv.conf (naming
// resolvers, with keep, the host's search and options lines) and
// nsswitch.conf (the host's, resolving hosts by files and DNS only, so
// that no module such as systemd-resolved's answers around tungate). A
// file that is already there is left alone, with a warning. For any other
// namespace it logs which address to name in its resolv.conf. Failures are
// warnings: the gateway serves anyway.
func writeNetNSDNS(base, spec string, resolvers []netip.Addr, keep []string, log *slog.Logger) *netnsEtc {
	e := &netnsEtc{log: log}
	name, ok := namedNetNS(spec)
	if !ok {
		log.Info("DNS: name tungate's resolver in the namespace's resolv.conf", "netns", spec, "resolver", fmt.Sprint(resolvers))
		return e
	}
	if len(resolvers) == 0 {
		log.Warn("DNS: no resolver address on the device, so no resolv.conf for the namespace", "netns", name)
		return e
	}
	dir := filepath.Join(base, name)
	if err := e.mkdirs(dir); err != nil {
		log.Warn("DNS: cannot give the namespace a resolv.conf: lookups in it (ip netns exec) may fail; name tungate's resolver there by hand", "err", err, "resolver", fmt.Sprint(resolvers))
		return e
	}
	var conf bytes.Buffer
	_ = dns.WriteResolvConf(&conf, resolvers, keep) // a bytes.Buffer does not fail
	e.write(filepath.Join(dir, "resolv.conf"), conf.Bytes(), "DNS in the namespace may not work: ip netns exec uses this file, not tungate's resolver, unless it names it", resolvers)
	host, err := os.ReadFile(appns.NSSwitchPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		log.Warn("DNS: cannot read the host's nsswitch.conf; the namespace gets none of its own", "err", err)
	default:
		e.write(filepath.Join(dir, "nsswitch.conf"), appns.NSSwitchConf(host), "names in the namespace may be resolved around tungate's resolver (by the modules its hosts line names)", resolvers)
	}
	return e
}

// mkdirs makes dir and its missing parents, remembering which it made.
func (e *netnsEtc) mkdirs(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) || d == filepath.Dir(d) {
			return fmt.Errorf("make %s: %w", dir, err)
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil {
			return fmt.Errorf("make %s: %w", missing[i], err)
		}
		e.dirs = append([]string{missing[i]}, e.dirs...)
	}
	return nil
}

// write creates path with data unless it exists: then it warns, saying
// what may go wrong (why).
func (e *netnsEtc) write(path string, data []byte, why string, resolvers []netip.Addr) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		e.log.Warn("DNS: "+path+" was there before tungate started, so tungate left it alone: "+why, "resolver", fmt.Sprint(resolvers))
		return
	}
	if err == nil {
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}
	if err != nil {
		e.log.Warn("DNS: cannot write "+path+": "+why, "err", err, "resolver", fmt.Sprint(resolvers))
		return
	}
	e.files = append(e.files, path)
	e.log.Debug("DNS: wrote the namespace's file", "path", path)
}

// remove deletes the files written and then the directories made, if
// nothing else has been put in them meanwhile.
func (e *netnsEtc) remove() {
	for _, p := range e.files {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			e.log.Warn("DNS: cannot remove the namespace's file", "path", p, "err", err)
		}
	}
	for _, d := range e.dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			e.log.Debug("DNS: left a directory tungate made, as it is not empty", "path", d, "err", err)
		}
	}
}
