package forwarder

import (
	"context"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/tungate/tungate/stack"
)

// HandleTCP implements stack.Handler. It dials the destination before the
// app's handshake completes, so that a refused or unreachable destination
// reaches the app as a reset rather than as a connection that dies later.
func (f *Forwarder) HandleTCP(r *tcp.ForwarderRequest) {
	id := r.ID()
	src, dst := endpoints(id)
	if !f.allowed("tcp", dst) {
		f.log.Debug("tcp refused by policy", "src", src, "dst", dst)
		r.Complete(true)
		return
	}
	if !f.goFlow(func(ctx context.Context) { f.forwardTCP(ctx, r, src, dst) }) {
		r.Complete(true)
	}
}

func (f *Forwarder) forwardTCP(ctx context.Context, r *tcp.ForwarderRequest, src, dst netip.AddrPort) {
	dialCtx, cancel := context.WithTimeout(ctx, f.opts.ConnectTimeout)
	upstream, err := f.opts.Dialer.DialContext(dialCtx, network("tcp", dst.Addr()), dst.String())
	cancel()
	if err != nil {
		f.log.Debug("tcp dial failed", "src", src, "dst", dst, "err", err)
		r.Complete(true)
		return
	}
	var wq waiter.Queue
	ep, tcpErr := r.CreateEndpoint(&wq)
	if tcpErr != nil {
		// The app gave up (or the stack is closing) while we dialed.
		r.Complete(true)
		upstream.Close()
		f.log.Debug("tcp accept failed", "src", src, "dst", dst, "err", stack.AsError(tcpErr))
		return
	}
	r.Complete(false)
	ep.SocketOptions().SetKeepAlive(true)
	app := newAppConn(&wq, ep)
	f.log.Debug("tcp open", "src", src, "dst", dst)
	// The relay gets a fresh goroutine rather than this one, whose stack
	// grew deep while dialing: an idle flow parks that goroutine for as
	// long as it lives, and a small stack is most of what it costs.
	host := wrapHost(upstream)
	relay := func(ctx context.Context) {
		if err := Relay(ctx, app, host); err != nil {
			f.log.Debug("tcp relay ended", "src", src, "dst", dst, "err", err)
		}
	}
	if !f.goFlow(relay) {
		app.Reset()
		host.Close()
	}
}

// endpoints turns gVisor's view of a flow (local = the destination the app
// dialed, remote = the app) into app source and destination.
func endpoints(id gvstack.TransportEndpointID) (src, dst netip.AddrPort) {
	return addrPort(id.RemoteAddress, id.RemotePort), addrPort(id.LocalAddress, id.LocalPort)
}

func addrPort(a tcpip.Address, port uint16) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return netip.AddrPortFrom(ip, port)
}

// network picks "tcp4"/"tcp6" (or udp) so that an IPv4-mapped address is
// never dialed over the other family by accident.
func network(base string, a netip.Addr) string {
	if a.Is4() {
		return base + "4"
	}
	return base + "6"
}
