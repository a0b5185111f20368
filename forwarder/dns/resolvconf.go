package dns

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
)

// HostResolvConf is where the host's resolver configuration lives.
const HostResolvConf = "/etc/resolv.conf"

// ResolvConf is what a resolv.conf says that matters here.
type ResolvConf struct {
	// Servers are the nameserver lines, port 53.
	Servers []netip.AddrPort
	// Keep are the search, domain and options lines, verbatim, for the
	// namespace's own resolv.conf.
	Keep []string
}

// ReadResolvConf parses the file at path.
func ReadResolvConf(path string) (*ResolvConf, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read DNS servers: %w", err)
	}
	defer f.Close()
	rc, err := ParseResolvConf(f)
	if err != nil {
		return nil, fmt.Errorf("read DNS servers from %s: %w", path, err)
	}
	return rc, nil
}

// ParseResolvConf parses resolv.conf(5) text. Lines it does not understand,
// and nameserver values that are not IP addresses, are skipped as the C
// library does.
func ParseResolvConf(r io.Reader) (*ResolvConf, error) {
	rc := &ResolvConf{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], ";") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if len(fields) < 2 {
				continue
			}
			if a, err := netip.ParseAddr(fields[1]); err == nil {
				rc.Servers = append(rc.Servers, netip.AddrPortFrom(a.Unmap(), Port))
			}
		case "search", "domain", "options":
			rc.Keep = append(rc.Keep, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return rc, nil
}

// ParseServer parses ADDR or ADDR:PORT ([ADDR]:PORT for IPv6); the port
// defaults to 53.
func ParseServer(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a.Unmap(), Port), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("want ADDR or ADDR:PORT, such as 192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53")
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// WriteResolvConf writes the resolv.conf an app in the namespace sees:
// the resolver's addresses, then the lines kept from the host's file.
func WriteResolvConf(w io.Writer, resolver []netip.Addr, keep []string) error {
	var b strings.Builder
	b.WriteString("# Written by tungate: the namespace's resolver, answered by tungate.\n")
	for _, a := range resolver {
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	for _, l := range keep {
		b.WriteString(l + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
