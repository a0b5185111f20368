package publish

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/tungate/tungate/forwarder/flows"
)

// udpClient is one host client's session: its datagrams go into the
// namespace through a gonet socket of its own, so replies find their way
// back to it.
type udpClient struct {
	ns   net.Conn
	idle *time.Timer
	flow *flows.Flow
}

// serveUDP reads the host socket and hands each datagram to its client's
// session, starting one if needed.
func (p *Publisher) serveUDP(host *net.UDPConn, target netip.AddrPort) {
	var mu sync.Mutex
	clients := make(map[netip.AddrPort]*udpClient)
	defer func() {
		mu.Lock()
		for _, c := range clients {
			c.ns.Close()
		}
		mu.Unlock()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := host.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.log.Warn("publish: read failed", "listen", host.LocalAddr(), "err", err)
			}
			return
		}
		mu.Lock()
		c := clients[from]
		if c == nil {
			c = p.newUDPClient(host, from, target, func(done *udpClient) {
				mu.Lock()
				if clients[from] == done {
					delete(clients, from)
				}
				mu.Unlock()
			})
			if c == nil {
				mu.Unlock()
				continue
			}
			clients[from] = c
		}
		mu.Unlock()
		c.idle.Reset(p.opts.UDPTimeout)
		c.flow.Down().AddDatagram(n)
		if _, err := c.ns.Write(buf[:n]); err != nil {
			p.log.Debug("publish: send into the namespace failed", "from", from, "port", target.Port(), "err", err)
		}
	}
}

// newUDPClient opens the session's socket into the namespace and starts
// copying replies back to the client; done runs when the session ends.
func (p *Publisher) newUDPClient(host *net.UDPConn, from netip.AddrPort, target netip.AddrPort, done func(*udpClient)) *udpClient {
	fl := p.track(flows.UDP, net.UDPAddrFromAddrPort(from), host.LocalAddr(), target)
	ns, err := p.opts.Stack.DialUDP(target)
	fl.Opened(err)
	if err != nil {
		p.log.Debug("publish: open socket into the namespace failed", "from", from, "port", target.Port(), "err", err)
		return nil
	}
	c := &udpClient{ns: ns, flow: fl}
	c.idle = time.AfterFunc(p.opts.UDPTimeout, func() {
		fl.Ending(flows.EndIdle)
		ns.Close()
	})
	fl.SetCloser(func() { ns.Close() })
	ok := p.owned.Go(func() {
		defer done(c)
		defer fl.Finish(flows.EndClosed)
		defer c.idle.Stop()
		stop := context.AfterFunc(p.ctx, func() { ns.Close() })
		defer stop()
		buf := make([]byte, 64<<10)
		for {
			n, err := ns.Read(buf)
			if err != nil {
				ns.Close()
				return
			}
			c.idle.Reset(p.opts.UDPTimeout)
			fl.Up().AddDatagram(n)
			host.WriteToUDPAddrPort(buf[:n], from)
		}
	})
	if !ok {
		c.idle.Stop()
		ns.Close()
		fl.Finish(flows.EndClosed)
		return nil
	}
	return c
}
