package proxy

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/tungate/tungate/forwarder/internal/hostsock"
)

type hostSocketsKey struct{}

// WithHostSockets returns ctx telling Direct to dial the TCP sockets it
// dials under ctx to an IP address (not a name) in set, outside the Go
// runtime's poller (package hostsock says why). Connections dialed so
// live until the caller closes them, and no longer than set.
func WithHostSockets(ctx context.Context, set *hostsock.Set) context.Context {
	return context.WithValue(ctx, hostSocketsKey{}, set)
}

func hostSockets(ctx context.Context) *hostsock.Set {
	set, _ := ctx.Value(hostSocketsKey{}).(*hostsock.Set)
	return set
}

// literalTCP parses address when network is TCP of its family and
// address is an IP address and port.
func literalTCP(network, address string) (netip.AddrPort, bool) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return netip.AddrPort{}, false
	}
	is4 := ap.Addr().Unmap().Is4()
	switch network {
	case "tcp":
		return ap, true
	case "tcp4":
		return ap, is4
	case "tcp6":
		return ap, !is4
	}
	return netip.AddrPort{}, false
}

// dialHostSocket is DialContext in set: the same checks, options,
// timeout, keepalive and error sentinels.
func (d *Direct) dialHostSocket(ctx context.Context, set *hostsock.Set, ap netip.AddrPort) (net.Conn, error) {
	if err := checkAddrPort(ctx, ap); err != nil {
		return nil, err
	}
	if d.Timeout > 0 {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > d.Timeout {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d.Timeout)
			defer cancel()
		}
	}
	var control func(fd int) error
	if d.Interface != "" || d.Mark != 0 {
		control = d.setSocketOptions
	}
	c, err := set.Dial(ctx, ap, control)
	if err != nil {
		return nil, classifyErrno(err)
	}
	if !keepAliveLater(ctx) {
		if err := c.SetKeepAliveConfig(HostKeepAlive()); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}
