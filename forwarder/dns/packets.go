package dns

import (
	"io"
	"net"
	"net/netip"

	"github.com/tungate/tungate/forwarder/proxy"
)

// OpenPackets returns the resolver's side of one UDP session's DNS to any
// of the addresses it answers at, as one conversation: WriteTo takes a
// query to an address, ReadFrom returns each answer with the address it
// answers for. A session that asks many addresses (with fake DNS, every
// address answers on port 53) so costs one conversation and one reader,
// not one per address. It never blocks; maxInFlight bounds the queries
// and answers it holds, as for a flow.
func (r *Resolver) OpenPackets() (proxy.PacketConn, error) {
	c, err := r.newFlow(netip.AddrPort{}, false)
	if err != nil {
		return nil, err
	}
	return &packets{f: c.(*flow)}, nil
}

// packets is a datagram flow whose queries go to many addresses.
type packets struct{ f *flow }

var _ proxy.PacketConn = (*packets)(nil)

// WriteTo takes one query sent to dst. It never blocks: a query beyond
// maxInFlight is dropped, as by a busy server.
func (p *packets) WriteTo(b []byte, dst netip.AddrPort) error {
	f := p.f
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		return net.ErrClosed
	case !f.hungUp:
		f.takeDatagram(b, dst)
	}
	return nil
}

// ReadFrom returns the next answer (cut to b) and the address it answers
// for; io.EOF once the resolver has hung up and every answer is read,
// net.ErrClosed after Close.
func (p *packets) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	f := p.f
	f.mu.Lock()
	defer f.mu.Unlock()
	for !f.closed && len(f.answers) == 0 && !f.hungUp {
		f.ready.Wait()
	}
	switch {
	case f.closed:
		return 0, netip.AddrPort{}, net.ErrClosed
	case len(f.answers) > 0:
		n, from := f.nextAnswer(b)
		return n, from, nil
	}
	return 0, netip.AddrPort{}, io.EOF
}

// WaitReadable returns once ReadFrom would not block, without a buffer.
func (p *packets) WaitReadable() error { return p.f.WaitReadable() }

// Close ends the conversation and waits for the queries being answered.
func (p *packets) Close() error { return p.f.Close() }
