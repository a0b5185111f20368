// Package fakedns answers DNS queries with addresses from a reserved range
// and remembers the name behind each, so flows reach a proxy by name.
//
// With a proxy, the name a program looked up must reach the proxy as a name:
// a Tor-style proxy or a split-horizon corporate network resolves it on its
// side, and no query leaves the host. Resolver hands out one address per
// name (an IPv4 one from Prefix4 for A queries and the matching IPv6 one
// from Prefix6 for AAAA): it is the Answerer of a forwarder/dns Resolver
// that the router (forwarder/route) sends every DNS flow to (port 53, any
// destination, UDP and TCP), and the router's table of names (Contains,
// Name), so that a flow to a handed-out address is dialed by name.
//
// Answers carry a short TTL (DefaultTTL), but an address keeps its name for
// as long as the table has room: programs that cache answers longer than
// the TTL still reach the right name. When the table is full, the name used
// least recently gives up its address.
package fakedns

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Defaults for Options.
var (
	// DefaultPrefix4 lies in 198.18.0.0/15 (RFC 2544, benchmarking), next to
	// the device's default 198.18.0.1/24, and is routed nowhere real.
	DefaultPrefix4 = netip.MustParsePrefix("198.19.0.0/16")
	// DefaultPrefix6 is a /64 of tungate's ULA prefix fd74:6761:7465::/48
	// ("fa4e" for fake), apart from the device's fd74:6761:7465::/64.
	DefaultPrefix6 = netip.MustParsePrefix("fd74:6761:7465:fa4e::/64")
)

const (
	// DefaultTTL is the TTL of every answer: short, so that programs ask
	// again soon rather than keep an address across a tungate restart,
	// which forgets the table.
	DefaultTTL = 5 * time.Second
	// DefaultSize is the number of names remembered at once: every address
	// of DefaultPrefix4 but its first and last.
	DefaultSize = 1<<16 - 2
)

// Options configures a Resolver. The zero value uses the defaults.
type Options struct {
	// Prefix4 and Prefix6 are the ranges addresses are handed out from.
	// Nothing else may use them: a flow to one of their addresses that the
	// table does not know is refused.
	Prefix4, Prefix6 netip.Prefix
	// Size bounds the table; zero means DefaultSize. It must leave room in
	// both prefixes (Size+2 addresses).
	Size int
	// TTL is the TTL of every answer; zero means DefaultTTL.
	TTL time.Duration
	// Blocked, if set, reports names (lower case, no trailing dot) whose
	// every flow would be refused: their queries get NXDOMAIN, so a
	// blocked name costs the app nothing (route.BlocksName). It must not
	// block.
	Blocked func(name string) bool
}

// Resolver is the table of names and their addresses, and the DNS
// answerer that fills it. It is safe for concurrent use.
type Resolver struct {
	prefix4, prefix6 netip.Prefix
	size             int
	ttl              uint32
	blocked          func(string) bool

	mu    sync.Mutex
	names []string          // slot -> name; slot 0 is the list's sentinel
	slots map[string]uint32 // name -> slot
	// prev and next link the slots in use, most recently used first, in a
	// ring through slot 0.
	prev, next []uint32
}

// New returns a Resolver.
func New(opts Options) (*Resolver, error) {
	if !opts.Prefix4.IsValid() {
		opts.Prefix4 = DefaultPrefix4
	}
	if !opts.Prefix6.IsValid() {
		opts.Prefix6 = DefaultPrefix6
	}
	if opts.Size == 0 {
		opts.Size = DefaultSize
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	p4, p6 := opts.Prefix4.Masked(), opts.Prefix6.Masked()
	switch {
	case !p4.Addr().Is4() || !p6.Addr().Is6() || p6.Addr().Is4In6():
		return nil, fmt.Errorf("fakedns: want an IPv4 and an IPv6 prefix, got %s and %s", p4, p6)
	case opts.Size < 1 || !fits(opts.Size, 32-p4.Bits()) || !fits(opts.Size, 128-p6.Bits()):
		return nil, fmt.Errorf("fakedns: a table of %d names does not fit in %s and %s", opts.Size, p4, p6)
	case opts.TTL < time.Second:
		return nil, errors.New("fakedns: TTL must be at least 1s")
	}
	return &Resolver{
		prefix4: p4, prefix6: p6, size: opts.Size, ttl: uint32(opts.TTL / time.Second), blocked: opts.Blocked,
		names: []string{""}, slots: make(map[string]uint32), prev: []uint32{0}, next: []uint32{0},
	}, nil
}

// fits reports whether size slots, plus the first and last address, fit in
// a range of 2^hostBits addresses.
func fits(size, hostBits int) bool {
	return hostBits >= 32 || size+2 <= 1<<hostBits
}

// Contains reports whether a is in one of the resolver's ranges.
func (r *Resolver) Contains(a netip.Addr) bool {
	return r.prefix4.Contains(a.Unmap()) || r.prefix6.Contains(a)
}

// Name returns the name behind a handed-out address; false if a is not one
// or its name has been forgotten.
func (r *Resolver) Name(a netip.Addr) (string, bool) {
	slot, ok := r.slotOf(a)
	if !ok {
		return "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if slot >= uint32(len(r.names)) {
		return "", false
	}
	r.touch(slot)
	return r.names[slot], true
}

// Lookup returns the addresses of name (lower case, no trailing dot),
// handing them out if name has none.
func (r *Resolver) Lookup(name string) (v4, v6 netip.Addr) {
	slot := r.slotFor(name)
	return r.addr(r.prefix4, slot), r.addr(r.prefix6, slot)
}

func (r *Resolver) slotFor(name string) uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if slot, ok := r.slots[name]; ok {
		r.touch(slot)
		return slot
	}
	var slot uint32
	if len(r.names) <= r.size {
		slot = uint32(len(r.names))
		r.names, r.prev, r.next = append(r.names, ""), append(r.prev, 0), append(r.next, 0)
	} else {
		slot = r.prev[0] // least recently used
		delete(r.slots, r.names[slot])
		r.unlink(slot)
	}
	r.names[slot] = name
	r.slots[name] = slot
	r.pushFront(slot)
	return slot
}

// touch moves slot to the front of the list. r.mu must be held.
func (r *Resolver) touch(slot uint32) {
	r.unlink(slot)
	r.pushFront(slot)
}

func (r *Resolver) unlink(slot uint32) {
	p, n := r.prev[slot], r.next[slot]
	r.next[p], r.prev[n] = n, p
}

func (r *Resolver) pushFront(slot uint32) {
	first := r.next[0]
	r.prev[slot], r.next[slot] = 0, first
	r.prev[first], r.next[0] = slot, slot
}

// addr returns the address of slot in prefix p. The slot fits in p's host
// bits (New checks), which are zero in p's address, and in its last four
// bytes, so it is simply added there.
func (r *Resolver) addr(p netip.Prefix, slot uint32) netip.Addr {
	b := p.Addr().AsSlice()
	tail := b[len(b)-4:]
	binary.BigEndian.PutUint32(tail, binary.BigEndian.Uint32(tail)+slot)
	a, _ := netip.AddrFromSlice(b)
	return a
}

// slotOf is the inverse of addr.
func (r *Resolver) slotOf(a netip.Addr) (uint32, bool) {
	a = a.Unmap()
	p := r.prefix6
	if a.Is4() {
		p = r.prefix4
	}
	if !p.Contains(a) {
		return 0, false
	}
	ab, pb := a.AsSlice(), p.Addr().AsSlice()
	n := len(ab) - 4
	if !bytes.Equal(ab[:n], pb[:n]) {
		return 0, false
	}
	off := binary.BigEndian.Uint32(ab[n:]) - binary.BigEndian.Uint32(pb[n:])
	if off == 0 || off > uint32(r.size) {
		return 0, false
	}
	return off, true
}
