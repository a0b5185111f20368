package main

import (
	"github.com/spf13/pflag"

	"github.com/tungate/tungate/forwarder/udpnat"
)

// addUDPNATFlags registers the UDP session table's flags.
func addUDPNATFlags(fs *pflag.FlagSet, c *gatewayConfig) {
	c.udpUnreplied = udpnat.DefaultUnrepliedTimeout
	fs.Var(durationValue{&c.udpUnreplied}, "udp-unreplied-timeout", "end a UDP session that never got a reply after this long without a datagram, so that scans and floods free their sessions early; at most --udp-timeout")
	fs.Var(&udpFilterValue{&c.udpFilter}, "udp-filter", "which sources reach an app's UDP port once it has sent from it: endpoint (anyone: full cone, for calls, games and peer-to-peer), address (only addresses it sent to) or port (only the address and port pairs it sent to)")
}

// udpFilterValue is the value of --udp-filter.
type udpFilterValue struct{ f *udpnat.Filter }

func (v *udpFilterValue) String() string { return v.f.String() }

func (v *udpFilterValue) Set(s string) error {
	f, err := udpnat.ParseFilter(s)
	if err != nil {
		return err
	}
	*v.f = f
	return nil
}

func (v *udpFilterValue) Type() string { return "MODE" }

// validateUDP refuses an unreplied timeout longer than the replied one: a
// session that got a reply would then end sooner than one that did not.
func (c *gatewayConfig) validateUDP() error {
	if c.udpUnreplied > c.udpTimeout {
		return usageErrorf("--udp-unreplied-timeout %v is longer than --udp-timeout %v: a session that never got a reply must not outlive one that did", c.udpUnreplied, c.udpTimeout)
	}
	return nil
}
