package main

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/spf13/pflag"

	"github.com/tungate/tungate/forwarder"
	"github.com/tungate/tungate/forwarder/udpnat"
	"github.com/tungate/tungate/stack/tun"
)

// Default device addresses: 198.18.0.0/15 is reserved for benchmarking
// (RFC 2544) and rarely routed anywhere real; the IPv6 prefix is a ULA.
var defaultAddresses = []netip.Prefix{
	netip.MustParsePrefix("198.18.0.1/24"),
	netip.MustParsePrefix("fd74:6761:7465::1/64"),
}

// gatewayConfig is everything the gateway flags say, parsed and typed.
type gatewayConfig struct {
	device         deviceURL
	netns          string
	addresses      prefixList
	noRoutes       bool
	mtu            int
	iface          string
	fwmark         uint32
	connectTimeout time.Duration
	udpTimeout     time.Duration
	udpUnreplied   unrepliedTimeout
	udpFilter      udpnat.Filter
	cpus           int
	tunQueues      int
	logLevel       logLevel
	proxy          proxyConfig
	ready          readyConfig
	observe        observeConfig
	autoRoute      autoRouteConfig
	// dns are the servers tungate's resolver asks (--dns); empty means
	// the host's.
	dns    serverList
	limits limitConfig
	// allowHostLoopback opens the host's loopback in --netns mode.
	allowHostLoopback bool
	// seccomp confines tungate to its system calls once set up.
	seccomp bool
}

// addGatewayFlags registers the flags shared by the gateway and `run`.
func addGatewayFlags(fs *pflag.FlagSet, c *gatewayConfig) {
	c.addresses = prefixList{values: append([]netip.Prefix(nil), defaultAddresses...)}
	c.mtu = 1500
	fs.Var(intValue{&c.mtu, 576, 65535}, "mtu", "MTU of the TUN device (576 to 65535)")
	fs.StringVar(&c.iface, "interface", "", "bind outbound sockets to interface `NAME` (SO_BINDTODEVICE), so routing the host's traffic into the device cannot loop")
	fs.Var(markValue{&c.fwmark}, "fwmark", "set this mark (SO_MARK) on outbound sockets, for policy routing")
	c.connectTimeout = forwarder.DefaultConnectTimeout
	fs.Var(durationValue{&c.connectTimeout}, "connect-timeout", "give up on an outbound TCP connect after this long")
	c.udpTimeout = forwarder.DefaultUDPTimeout
	fs.Var(durationValue{&c.udpTimeout}, "udp-timeout", "end a UDP session that got a reply after this long without a datagram (one that never did: --udp-unreplied-timeout)")
	addUDPNATFlags(fs, c)
	fs.Var(intValue{&c.cpus, 0, 1024}, "cpus", "CPUs that run tungate's own code at once (GOMAXPROCS); 0 picks half of the usable CPUs, at least 1")
	c.tunQueues = 1
	fs.Var(intValue{&c.tunQueues, 1, tun.MaxQueues}, "tun-queues", fmt.Sprintf("queues of the TUN device (1 to %d): more than 1 makes it multi-queue, each queue read by its own goroutine, so flows spread over --cpus", tun.MaxQueues))
	c.logLevel.level = 0
	fs.Var(&c.logLevel, "log-level", "log level: debug, info, warn or error")
	addProxyFlags(fs, &c.proxy)
	addReadyFlags(fs, &c.ready)
	addObserveFlags(fs, &c.observe)
	addLimitFlags(fs, &c.limits)
	fs.BoolVar(&c.seccomp, "seccomp", true, "once set up, confine tungate to the system calls it needs (a seccomp filter; others fail with EPERM); --seccomp=false turns it off")
}

// addDeviceFlags registers the flags that only the gateway has.
func addDeviceFlags(fs *pflag.FlagSet, c *gatewayConfig) {
	c.device = deviceURL{name: "tungate0", fd: -1}
	fs.VarP(&c.device, "device", "d", "TUN device: tun://NAME (created if missing) or fd://N (an inherited TUN fd)")
	fs.StringVar(&c.netns, "netns", "", "network namespace the device lives in, `NAME|PATH`: a name under /run/netns or a path such as /proc/PID/ns/net")
	fs.Var(&c.addresses, "address", "address of the device, repeatable (default 198.18.0.1/24 and fd74:6761:7465::1/64)")
	fs.BoolVar(&c.noRoutes, "no-routes", false, "with --netns, do not add default routes into the device")
	addAutoRouteFlags(fs, &c.autoRoute)
	addDNSFlag(fs, c, "DNS server for tungate's resolver at the device's resolver addresses (see README, \"DNS in the device's namespace\"), ADDR[:PORT], repeatable (default: the nameservers of the host's /etc/resolv.conf)")
	addHostLoopbackFlag(fs, &c.allowHostLoopback)
}

// validate checks what single flag values cannot; ranges and forms are
// checked as each flag is parsed (intValue, durationValue, ...).
func (c *gatewayConfig) validate() error {
	if err := c.validateAutoRoute(); err != nil {
		return err
	}
	if err := c.ready.validate(); err != nil {
		return err
	}
	if err := c.validateUDP(); err != nil {
		return err
	}
	if err := c.limits.validate(); err != nil {
		return err
	}
	return c.proxy.validate()
}

// usageError marks errors that exit with status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

func isUsage(err error) bool {
	var u *usageError
	return errors.As(err, &u)
}

// flagParseError turns a pflag parse error into a usage error. For --proxy
// it leaves the raw argument out, since a proxy URL may carry a password.
func flagParseError(err error) error {
	var ive *pflag.InvalidValueError
	if errors.As(err, &ive) && ive.GetFlag().Name == "proxy" {
		err = fmt.Errorf("invalid argument for \"-x, --proxy\" flag: %w", ive.Unwrap())
	}
	return &usageError{fmt.Errorf("%w (see tungate --help)", err)}
}
