package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/tungate/tungate/forwarder/dns"
	"github.com/tungate/tungate/stack/appns"
)

// nsFiles are the files CMD sees instead of the host's; "" for one it
// does not get.
type nsFiles struct {
	resolvConf string // over /etc/resolv.conf
	nsswitch   string // over /etc/nsswitch.conf
}

// writeNSFiles writes CMD's resolv.conf (naming the namespace's resolver,
// with the host's search and options lines, keep) and its nsswitch.conf
// (the host's, with "hosts: files dns"; none if the host has none).
func writeNSFiles(keep []string) (nsFiles, error) {
	var f nsFiles
	var err error
	f.resolvConf, err = writeTemp("resolv", func(w io.Writer) error {
		return dns.WriteResolvConf(w, nsResolverAddrs, keep)
	})
	if err != nil {
		return f, fmt.Errorf("run: write the namespace's resolv.conf: %w", err)
	}
	host, err := os.ReadFile(appns.NSSwitchPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return f, nil
	case err != nil:
		f.remove()
		return nsFiles{}, fmt.Errorf("run: read the host's nsswitch.conf: %w", err)
	}
	f.nsswitch, err = writeTemp("nsswitch", func(w io.Writer) error {
		_, err := w.Write(appns.NSSwitchConf(host))
		return err
	})
	if err != nil {
		f.remove()
		return nsFiles{}, fmt.Errorf("run: write the namespace's nsswitch.conf: %w", err)
	}
	return f, nil
}

// remove deletes the files (once the setup process has mounted them).
func (f nsFiles) remove() {
	for _, p := range []string{f.resolvConf, f.nsswitch} {
		if p != "" {
			os.Remove(p)
		}
	}
}

// writeTemp writes a temporary tungate-NAME-*.conf file with write and
// returns its path.
func writeTemp(name string, write func(io.Writer) error) (string, error) {
	f, err := os.CreateTemp("", "tungate-"+name+"-*.conf")
	if err != nil {
		return "", err
	}
	err = write(f)
	if err == nil {
		// Readable by CMD when --user drops root.
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
