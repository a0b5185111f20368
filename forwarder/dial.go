package forwarder

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/forwarder/route"
)

// request is what the stack's TCP and UDP requests share.
type request interface {
	Src() netip.AddrPort
	Dst() netip.AddrPort
	Refuse()
}

// admit describes the new flow r, decides its fate, enters it in the flow
// table (t), and refuses it at once if that is the decision; ok is false
// then.
func (fw *Forwarder) admit(proto route.Proto, r request) (f *route.Flow, d route.Decision, t *flows.Flow, ok bool) {
	f = &route.Flow{Proto: proto, Src: r.Src(), Dst: r.Dst()}
	d = fw.guard(fw.decide(f))
	t = fw.track(f, d)
	if d.Kind == route.Refuse {
		r.Refuse()
		return nil, d, nil, false
	}
	return f, d, t, true
}

// decide asks the router for f's fate and logs it at debug level.
func (fw *Forwarder) decide(f *route.Flow) route.Decision {
	d := fw.opts.Router.Decide(f)
	if fw.log.Enabled(fw.ctx, slog.LevelDebug) {
		fw.log.Debug("flow", "proto", f.Proto.String(), "src", f.Src, "dst", f.Dst, "name", f.Name, "route", d)
	}
	return d
}

// open carries out a decision of kind Answer or Dial for f: the
// in-process server's side of the flow, or the upstream connection,
// dialed within the connect timeout. A failed dial through a proxy is
// logged naming the chain and hop.
func (fw *Forwarder) open(ctx context.Context, f *route.Flow, d route.Decision, t *flows.Flow) (net.Conn, error) {
	stream := f.Proto == route.TCP
	if d.Kind == route.Answer {
		c, err := d.Server.Open(f.Dst, stream)
		t.Opened(err)
		return c, err
	}
	dialCtx, cancel := context.WithTimeout(ctx, fw.opts.ConnectTimeout)
	defer cancel()
	if check := fw.addrCheck(d); check != nil && d.Dst.Name != "" && d.Upstream.FromHost(f.Proto) {
		dialCtx = proxy.WithAddrCheck(dialCtx, check)
	}
	var c net.Conn
	var err error
	start := time.Now()
	if stream {
		// Host sockets, to the destination or to the first proxy, wait
		// outside the runtime's poller, whose records outlive a flood.
		dialCtx = proxy.WithHostSockets(dialCtx, fw.sockets)
		if !d.Upstream.Proxied {
			// A direct socket parks when it idles, and gets its
			// keepalive then (hostConn.park).
			dialCtx = proxy.WithKeepAliveLater(dialCtx)
		}
		c, err = d.Upstream.DialTCP(dialCtx, d.Dst)
	} else {
		c, err = d.Upstream.DialUDP(dialCtx, d.Dst)
	}
	t.Dialed(time.Since(start), err)
	if err != nil {
		if d.Upstream.Proxied {
			fw.failures.report(ctx, f, d, err)
		}
		return nil, err
	}
	return wrapHost(c), nil
}

// failureLog logs failed dials through proxies at warn level, naming the
// chain and the hop that failed and never a password, at most once a
// second per hop, so that a dead proxy cannot flood the log.
type failureLog struct {
	log  *slog.Logger
	mu   sync.Mutex
	last map[failureKey]time.Time
}

type failureKey struct{ chain, hop string }

// maxFailureKeys bounds failureLog's memory; past it, it starts over.
const maxFailureKeys = 256

func newFailureLog(log *slog.Logger) *failureLog {
	return &failureLog{log: log, last: make(map[failureKey]time.Time)}
}

func (l *failureLog) report(ctx context.Context, f *route.Flow, d route.Decision, err error) {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return // tungate is stopping
	}
	if warnUDPRefused(l.log, d.Dst.String(), err) {
		return
	}
	key, index := failureKey{chain: d.Upstream.Name}, 0
	if he, ok := errors.AsType[*proxy.HopError](err); ok {
		key.hop, index = he.Hop, he.Index
	}
	now := time.Now()
	l.mu.Lock()
	if now.Sub(l.last[key]) < time.Second {
		l.mu.Unlock()
		return
	}
	if len(l.last) >= maxFailureKeys {
		clear(l.last)
	}
	l.last[key] = now
	l.mu.Unlock()
	l.log.Warn("proxy dial failed", "chain", key.chain, "hop", index, "proxy", key.hop,
		"network", f.Proto.String(), "dst", d.Dst.String(), "err", err)
}
