package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/tungate/tungate/forwarder/udpnat"
)

// addUDPNATFlags registers the UDP session table's flags.
func addUDPNATFlags(fs *pflag.FlagSet, c *gatewayConfig) {
	c.udpUnreplied.d = udpnat.DefaultUnrepliedTimeout
	fs.Var(unrepliedValue{&c.udpUnreplied}, "udp-unreplied-timeout", "end a UDP session that never got a reply after this long without a datagram, so that scans and floods free their sessions early (the default is cut to a shorter --udp-timeout; a longer value given is an error)")
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
// The default is cut to a shorter --udp-timeout instead, as it always was.
func (c *gatewayConfig) validateUDP() error {
	if c.udpUnreplied.d <= c.udpTimeout {
		return nil
	}
	if c.udpUnreplied.set {
		return usageErrorf("--udp-unreplied-timeout %v is longer than --udp-timeout %v: a session that never got a reply must not outlive one that did", c.udpUnreplied.d, c.udpTimeout)
	}
	c.udpUnreplied.d = c.udpTimeout
	return nil
}

// unrepliedTimeout is --udp-unreplied-timeout: its value, and whether it
// was given (validateUDP treats the default and a given value apart).
type unrepliedTimeout struct {
	d   time.Duration
	set bool
}

// unrepliedValue is the flag's value: a durationValue that notes it was
// given.
type unrepliedValue struct{ t *unrepliedTimeout }

func (v unrepliedValue) String() string {
	if v.t == nil {
		return durationValue{}.String()
	}
	return durationValue{&v.t.d}.String()
}

func (v unrepliedValue) Set(s string) error {
	if err := (durationValue{&v.t.d}).Set(s); err != nil {
		return err
	}
	v.t.set = true
	return nil
}

func (v unrepliedValue) Type() string { return durationValue{}.Type() }
