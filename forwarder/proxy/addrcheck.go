package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// ErrAddressRefused means a name resolved to an address that the dial's
// AddrCheck refuses (a name for the host's loopback, say).
var ErrAddressRefused = errors.New("resolved address refused")

// AddrCheck vets each address a host socket is about to connect to, after
// the name it was given resolved: it returns nil to let the connect go on,
// or why not. It must not block.
type AddrCheck func(dst netip.AddrPort) error

type addrCheckKey struct{}

// WithAddrCheck returns ctx carrying check, which Direct applies to every
// address it connects a socket to while dialing under ctx (each address a
// name resolves to). An address check is per dial, not per dialer: the
// same Direct serves tungate's own dials (its resolver's queries to a
// server on loopback) and the apps' flows, and only the latter are
// vetted. A refused address fails that attempt with an error matching
// ErrAddressRefused; the dialer goes on to the name's other addresses.
func WithAddrCheck(ctx context.Context, check AddrCheck) context.Context {
	return context.WithValue(ctx, addrCheckKey{}, check)
}

// checkAddr applies ctx's AddrCheck, if any, to the resolved address
// (host:port) that a socket is about to connect to.
func checkAddr(ctx context.Context, address string) error {
	check, _ := ctx.Value(addrCheckKey{}).(AddrCheck)
	if check == nil {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", address, ErrAddressRefused)
	}
	return runCheck(check, ap)
}

// checkAddrPort is checkAddr for an address already parsed.
func checkAddrPort(ctx context.Context, ap netip.AddrPort) error {
	if check, _ := ctx.Value(addrCheckKey{}).(AddrCheck); check != nil {
		return runCheck(check, ap)
	}
	return nil
}

func runCheck(check AddrCheck, ap netip.AddrPort) error {
	if err := check(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())); err != nil {
		return mark(fmt.Errorf("connect to %s: %w", ap, err), ErrAddressRefused)
	}
	return nil
}
