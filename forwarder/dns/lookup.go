package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
)

// ErrNoAddress is returned by Lookup for a name that has no address of the
// family asked for.
var ErrNoAddress = errors.New("no address")

// Lookup resolves host names to addresses by asking Forward's servers, for
// what must send an address where the app gave a name: SOCKS5 UDP through
// a proxy that would resolve the name in the wrong family
// (proxy.UDPResolver).
type Lookup struct {
	// Forward asks the servers, through its Dialer. Required.
	Forward *Forward
	// Network carries the queries: "udp", or "tcp" to send them over a
	// proxy's TCP path (Forward uses TCP anyway where its Dialer has no
	// UDP).
	Network string
}

// Record types asked for (RFC 1035, RFC 3596).
const (
	typeA    = 1
	typeAAAA = 28
	classIN  = 1
)

// ResolveUDP resolves host for a datagram sent over network: "udp4" asks
// for an A record, "udp6" for AAAA, "udp" for A and then AAAA. It returns
// the first address of the answer; it has the shape of proxy.UDPResolver.
func (l *Lookup) ResolveUDP(ctx context.Context, network, host string) (netip.Addr, error) {
	types := []uint16{typeA}
	switch network {
	case "udp6":
		types = []uint16{typeAAAA}
	case "udp":
		types = []uint16{typeA, typeAAAA}
	}
	var errs []error
	for _, qt := range types {
		addrs, err := l.lookup(ctx, host, qt)
		if err == nil && len(addrs) > 0 {
			return addrs[0], nil
		}
		if err == nil {
			err = fmt.Errorf("%s: %w", typeName(qt), ErrNoAddress)
		}
		errs = append(errs, err)
	}
	return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, errors.Join(errs...))
}

func typeName(qt uint16) string {
	if qt == typeAAAA {
		return "AAAA"
	}
	return "A"
}

// lookup asks for the records of type qt of host.
func (l *Lookup) lookup(ctx context.Context, host string, qt uint16) ([]netip.Addr, error) {
	id := uint16(rand.Uint32())
	q, err := buildQuery(id, host, qt)
	if err != nil {
		return nil, err
	}
	ans, err := l.Forward.Answer(ctx, l.Network, q)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", typeName(qt), err)
	}
	addrs, err := parseAddrs(ans, id, qt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", typeName(qt), err)
	}
	return addrs, nil
}

// buildQuery is a recursive query for the records of type qt of host (a
// name, with or without its final dot).
func buildQuery(id uint16, host string, qt uint16) ([]byte, error) {
	name := strings.TrimSuffix(host, ".")
	if name == "" || len(name) > 253 {
		return nil, fmt.Errorf("%q is not a host name", host)
	}
	q := make([]byte, headerLen, headerLen+len(name)+6)
	binary.BigEndian.PutUint16(q[0:], id)
	q[2] = 0x01 // RD
	binary.BigEndian.PutUint16(q[4:], 1)
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return nil, fmt.Errorf("%q is not a host name", host)
		}
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	q = append(q, 0)
	q = binary.BigEndian.AppendUint16(q, qt)
	return binary.BigEndian.AppendUint16(q, classIN), nil
}

// parseAddrs returns the addresses of type qt in the answer section of
// ans, the response to query id (CNAMEs the server followed come with the
// records they lead to, so the owner names are not checked).
func parseAddrs(ans []byte, id uint16, qt uint16) ([]netip.Addr, error) {
	if !isResponse(ans, id) {
		return nil, errors.New("answer does not match the query")
	}
	if rcode := ans[3] & 0x0f; rcode != 0 {
		return nil, fmt.Errorf("the server answered with error %d (3 is no such name)", rcode)
	}
	off := headerLen
	for range binary.BigEndian.Uint16(ans[4:]) {
		var ok bool
		if off, ok = questionEnd(ans, off); !ok {
			return nil, errors.New("malformed answer")
		}
	}
	var addrs []netip.Addr
	for range binary.BigEndian.Uint16(ans[6:]) {
		// A record starts like a question (name, type, class), then TTL
		// and the data's length.
		end, ok := questionEnd(ans, off)
		if !ok || end+6 > len(ans) {
			return nil, errors.New("malformed answer")
		}
		typ, class := binary.BigEndian.Uint16(ans[end-4:]), binary.BigEndian.Uint16(ans[end-2:])
		n := int(binary.BigEndian.Uint16(ans[end+4:]))
		data := end + 6
		if data+n > len(ans) {
			return nil, errors.New("malformed answer")
		}
		if a, ok := netip.AddrFromSlice(ans[data : data+n]); ok && typ == qt && class == classIN && (n == 4) == (qt == typeA) {
			addrs = append(addrs, a)
		}
		off = data + n
	}
	return addrs, nil
}
