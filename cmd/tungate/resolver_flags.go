package main

import (
	"net/netip"
	"strings"

	"github.com/spf13/pflag"

	"github.com/tungate/tungate/forwarder/dns"
)

// addDNSFlag registers --dns, the servers tungate's resolver asks, with
// the help text of the mode (the gateway's and run's differ in where the
// resolver answers).
func addDNSFlag(fs *pflag.FlagSet, c *gatewayConfig, usage string) {
	fs.Var(&c.dns, "dns", usage)
}

// serverList is the repeatable --dns flag.
type serverList struct{ values []netip.AddrPort }

func (l *serverList) String() string {
	s := make([]string, len(l.values))
	for i, v := range l.values {
		s[i] = v.String()
	}
	return strings.Join(s, ",")
}

func (l *serverList) Set(s string) error {
	ap, err := dns.ParseServer(s)
	if err != nil {
		return err
	}
	l.values = append(l.values, ap)
	return nil
}

func (l *serverList) Type() string { return "ADDR[:PORT]" }
