// Package hostroute installs and removes the policy routing and nftables
// rules that route a whole network namespace into a TUN device; it owns
// nothing else.
//
// What it installs, in the namespace of the calling process, for IPv4 and
// IPv6:
//
//   - a routing table (Config.Table) holding a default route into the
//     device;
//   - policy rules in a block of PriorityBlock priorities from
//     Config.Priority, in this order: packets carrying Config.Mark (tungate's
//     own sockets and replies of inbound connections) and sockets bound to
//     Config.BoundInterface use the main table; then Config.Exclude
//     destinations and Config.ExcludeUIDs users; then DNS (UDP and TCP port
//     53) into the table unless Config.NoDNSHijack; then, unless
//     Config.RouteLAN, whatever the main table routes more specifically than
//     a default route (directly connected subnets, admin-added routes:
//     `lookup main suppress_prefixlength 0`); then every locally generated
//     packet (`iif lo`), of Config.IncludeUIDs users if any, into the table.
//     Unless Config.FailOpen, an `unreachable` rule follows the DNS rules and
//     the capturing rules: when the device vanishes (tungate killed), its
//     route goes with it, the table no longer matches, and captured traffic
//     fails at once with ENETUNREACH instead of leaving by the normal route;
//   - an nftables table "inet tungate" that gives the conntrack mark
//     Config.Mark to inbound connections (new, arriving on any interface but
//     the device), to connections leaving by any interface but the device,
//     and to TCP connections that predate it (first seen without a SYN), and
//     copies it to the packet mark of their packets, so replies are rerouted
//     to the main table (and pass a strict reverse-path filter with
//     src_valid_mark). See nft.go.
//
// Every rule and route carries the routing protocol number Protocol, which
// is how a later Install or Cleanup tells tungate's leftovers from anyone
// else's entries. One Routing may exist per network namespace; a second
// Install while the first's process lives fails with a *RunningError.
package hostroute

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Defaults of the tungate command line, documented in README.md.
const (
	// DefaultTable is the routing table that holds the route into the device.
	DefaultTable = 2022
	// DefaultPriority is the first priority of the rule block.
	DefaultPriority = 9000
	// DefaultMark is the socket and conntrack mark that keeps a packet out
	// of the device.
	DefaultMark uint32 = 0x2d1
	// PriorityBlock is how many rule priorities from Config.Priority
	// belong to tungate.
	PriorityBlock = 10
	// Protocol is the routing protocol number (rtm_protocol, `proto` in
	// `ip rule` and `ip route`) on every rule and route Install adds. 116
	// ("t") is not assigned in iproute2's rt_protos.
	Protocol = 116
	// NFTable is the name of the nftables table (family inet).
	NFTable = "tungate"
)

// Rule priorities, as offsets from Config.Priority.
const (
	prioBypass = iota
	prioExclude
	prioExcludeUID
	prioDNS
	prioDNSClosed
	prioLAN
	prioCapture
	prioClosed
)

// metricDevice is the metric of the route into the device.
const metricDevice = 1

// UIDRange is an inclusive range of user ids; First <= Last.
type UIDRange struct {
	First, Last uint32
}

// Config says what to route and how to recognise tungate's own packets.
type Config struct {
	// Device is the name of the TUN device; it must exist and be up.
	Device string
	// Table is the routing table; it must hold no routes but tungate's.
	Table int
	// Priority is the first of PriorityBlock rule priorities that must
	// hold no rules but tungate's.
	Priority int
	// Mark is the packet mark that sends a packet to the main table. The
	// caller sets it on its own sockets, unless they are bound to
	// BoundInterface.
	Mark uint32
	// BoundInterface, if set, is the interface the caller's own sockets are
	// bound to (SO_BINDTODEVICE); packets of sockets bound to it use the
	// main table.
	BoundInterface string
	// Exclude are destinations that use the main table.
	Exclude []netip.Prefix
	// ExcludeUIDs are users whose traffic uses the main table.
	ExcludeUIDs []UIDRange
	// IncludeUIDs, if any, are the only users whose traffic is captured.
	IncludeUIDs []UIDRange
	// RouteLAN captures destinations the main table routes more specifically
	// than by a default route, too (directly connected subnets).
	RouteLAN bool
	// NoDNSHijack leaves DNS to the LAN (and to excluded users) alone.
	NoDNSHijack bool
	// FailOpen leaves out the unreachable rules, so captured traffic goes
	// out by the main table when the device is gone.
	FailOpen bool
	// Logger receives one line when leftovers of an earlier instance are
	// removed. Nil means slog.Default().
	Logger *slog.Logger
}

// RunningError is returned when another live process holds the namespace's
// routing.
type RunningError struct {
	// PID is that process's id; 0 if it could not be found out.
	PID int
}

func (e *RunningError) Error() string {
	if e.PID == 0 {
		return "another tungate --auto-route is running in this network namespace: stop it first"
	}
	return fmt.Sprintf("another tungate --auto-route (pid %d) is running in this network namespace: stop it first", e.PID)
}

// ErrForeign is wrapped by errors about a table, priority or nftables table
// that holds entries tungate did not add.
var ErrForeign = errors.New("in use by entries tungate did not add")

// Routing is what one Install added; Remove takes it away.
type Routing struct {
	nl   *netlink.Handle
	lock *instanceLock

	mu      sync.Mutex
	added   installed
	removed bool
}

// installed is what Install added, in the order added.
type installed struct {
	nft    bool
	routes []netlink.Route
	rules  []netlink.Rule
}

// Install checks that cfg's table and priority block are free of anyone
// else's entries, removes leftovers of an earlier instance (logging one line),
// and installs the routing. On error everything it added is removed again.
func Install(cfg Config) (*Routing, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p, err := newPlan(&cfg)
	if err != nil {
		return nil, err
	}
	lock, err := acquireLock()
	if err != nil {
		return nil, err
	}
	nl, err := netlink.NewHandle()
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("auto-route: open netlink: %w", err)
	}
	r := &Routing{nl: nl, lock: lock}
	if err := r.install(&cfg, p); err != nil {
		if rerr := r.Remove(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", rerr))
		}
		return nil, err
	}
	return r, nil
}

func (r *Routing) install(cfg *Config, p *plan) error {
	left, err := scan(r.nl, cfg.Table, cfg.Priority)
	if err != nil {
		return err
	}
	if left.foreign != "" {
		return fmt.Errorf("auto-route: %s %w: pick another with --route-table or --rule-priority", left.foreign, ErrForeign)
	}
	if !left.empty() {
		desc, err := left.remove(r.nl)
		if err != nil {
			return fmt.Errorf("auto-route: remove leftovers of an earlier instance: %w", err)
		}
		cfg.Logger.Warn("removed the routing leftovers of an earlier tungate --auto-route that did not stop cleanly", "removed", len(desc))
	}
	warnStrictRPFilter(cfg.Logger, cfg.Device)
	if err := addNFTable(cfg.Device, cfg.Mark); err != nil {
		return err
	}
	r.added.nft = true
	for _, route := range p.routes {
		err := r.nl.RouteAdd(&route)
		if route.LinkIndex != 0 && isIPv6(route.Family) && ipv6Off(err) {
			// IPv6 is off on the device: the rules still apply, so captured
			// IPv6 meets the unreachable rule (or, failing open, the main
			// table) as if the device were gone.
			cfg.Logger.Warn("auto-route: IPv6 is disabled on the device; captured IPv6 traffic fails (goes direct with --fail-open)", "err", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("auto-route: add %s: %w", describeRoute(&route), permHint(err))
		}
		r.mu.Lock()
		r.added.routes = append(r.added.routes, route)
		r.mu.Unlock()
	}
	noIPv6 := false
	for _, rule := range p.rules {
		if noIPv6 && isIPv6(rule.Family) {
			continue
		}
		err := r.nl.RuleAdd(&rule)
		if isIPv6(rule.Family) && errors.Is(err, unix.EAFNOSUPPORT) {
			cfg.Logger.Warn("auto-route: the kernel has no IPv6; routing IPv4 only", "err", err)
			noIPv6 = true
			continue
		}
		if err != nil {
			return fmt.Errorf("auto-route: add %s: %w", describeRule(&rule), permHint(err))
		}
		r.mu.Lock()
		r.added.rules = append(r.added.rules, rule)
		r.mu.Unlock()
	}
	return nil
}

// Remove deletes every rule, route and the nftables table Install added,
// rules first, and releases the namespace. Entries already gone (a route
// that left with its device) are no error. It is idempotent.
func (r *Routing) Remove() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removed {
		return nil
	}
	r.removed = true
	var errs []error
	for i := len(r.added.rules) - 1; i >= 0; i-- {
		if err := r.nl.RuleDel(&r.added.rules[i]); err != nil && !gone(err) {
			errs = append(errs, fmt.Errorf("delete %s: %w", describeRule(&r.added.rules[i]), err))
		}
	}
	for i := len(r.added.routes) - 1; i >= 0; i-- {
		if err := r.nl.RouteDel(&r.added.routes[i]); err != nil && !gone(err) {
			errs = append(errs, fmt.Errorf("delete %s: %w", describeRoute(&r.added.routes[i]), err))
		}
	}
	if r.added.nft {
		if _, err := deleteNFTable(); err != nil {
			errs = append(errs, err)
		}
	}
	r.nl.Close()
	r.lock.release()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("auto-route: remove: %w", err)
	}
	return nil
}
