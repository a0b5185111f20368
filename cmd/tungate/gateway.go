package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/tungate/tungate/forwarder"
	"github.com/tungate/tungate/stack"
	"github.com/tungate/tungate/stack/tun"
)

// serve runs the gateway on the device cfg names until ctx ends.
func serve(ctx context.Context, cfg *gatewayConfig, log *slog.Logger) error {
	dev, err := tun.Open(tun.Config{Name: cfg.device.name, FD: cfg.device.fd, NetNS: cfg.netns, Offload: true, Queues: cfg.tunQueues})
	if err != nil {
		return err
	}
	if err := dev.QueueErr(); err != nil {
		log.Warn("the TUN device has fewer queues than --tun-queues asks for", "err", err)
	}
	if err := dev.OffloadErr(); err != nil {
		log.Warn("the kernel refused segmentation offload on the TUN device; moving plain packets, which is slower", "err", err)
	}
	defer dev.Close()
	if cfg.device.fd < 0 {
		err := dev.Configure(tun.NetConfig{
			MTU:           cfg.mtu,
			Addresses:     cfg.addresses.values,
			DefaultRoutes: cfg.netns != "" && !cfg.noRoutes,
		})
		switch {
		case errors.Is(err, tun.ErrIPv6Disabled):
			log.Warn("IPv6 is disabled in the device's namespace; serving IPv4 only", "err", err)
		case errors.Is(err, tun.ErrRouteExists):
			return fmt.Errorf("%w, or run with --no-routes to add none (and route by hand)", err)
		case err != nil:
			return err
		}
	}
	devGone := make(chan error, 1)
	dns := newHostDNS(cfg.dns.values, log)
	res := dns.gatewayRouting(cfg, log)
	gw, err := newGateway(cfg, dev.QueueFDs(), log, res, func(err error) {
		select {
		case devGone <- fmt.Errorf("device %s: %w", dev.Name(), err):
		default:
		}
	})
	if err != nil {
		return err
	}
	routing, err := installAutoRoute(cfg, dev.Name(), log)
	if err != nil {
		gw.Close()
		return err
	}
	if cfg.netns != "" {
		defer writeNetNSDNS(etcNetNSDir, cfg.netns, res.resolverAddrs, dns.keep, log).remove()
	}
	dropPrivileges(gatewayCaps(cfg), cfg.seccomp, log)
	log.Info("serving", "device", dev.Name(), "netns", cfg.netns, "mtu", cfg.mtu,
		"resolver", fmt.Sprint(res.resolverAddrs), "upstream_dns", fmt.Sprint(dns.servers))
	cfg.ready.signalReady(log)
	select {
	case <-ctx.Done():
		err = nil
	case err = <-devGone:
	}
	writeHeapProfile(log) // before the flows are torn down
	signalStopping(log)
	drops, udp, pkts := gw.stack.Counters(), gw.fwd.UDPStats(), gw.stack.Packets()
	gw.Close()
	err = errors.Join(err, routing.stop(err != nil))
	log.Info("stopped", "device", dev.Name(), "drops", drops, "udp", udp,
		slog.Group("udp_fast", "in", pkts.UDPFastIn, "out", pkts.UDPFastOut), "refused", limitsSummary(gw.fwd))
	return err
}

// On stop the stack outlives the flows' resets until no packet has arrived
// for resetQuiet, and at most by resetGrace (Stack.Settle): an app answers
// a reset at once if at all (its kernel does, from within the write that
// delivered the reset), so a short quiet spell means every answer has been
// read and answered.
const (
	resetQuiet = 25 * time.Millisecond
	resetGrace = 300 * time.Millisecond
)

// gateway is a stack, a forwarder and its router wired together on one
// device.
type gateway struct {
	stack   *stack.Stack
	fwd     *forwarder.Forwarder
	routing *routing
	obs     *observer
	// stopMem stops the memory returner (memreturn.go), which closes
	// memDone.
	stopMem context.CancelFunc
	memDone chan struct{}
}

// newGateway serves the TUN device whose queues are fds (which it does
// not take ownership of); run, if not nil, adds the routing of `tungate run`.
func newGateway(cfg *gatewayConfig, fds []int, log *slog.Logger, run *runRouting, onDeviceGone func(error)) (*gateway, error) {
	setCPUs(cfg.cpus, log)
	obs, err := newObserver(&cfg.observe, controlName(cfg, run != nil && run.underRun), log)
	if err != nil {
		return nil, err
	}
	rt, err := newRouting(cfg, run, &obs.dns, log)
	if err != nil {
		obs.close()
		return nil, err
	}
	// The forwarder is the stack's handler, so it exists first; UDP
	// replies find the stack once it does.
	var udpApp forwarder.LateApp
	limits, fdLimit := cfg.limits.forwarderLimits(log)
	fwd, err := forwarder.New(forwarder.Options{
		UDPApp:            &udpApp,
		UDPFilter:         cfg.udpFilter,
		Router:            rt.router,
		Echo:              &forwarder.HostPinger{Interface: cfg.iface, Mark: cfg.fwmark},
		ConnectTimeout:    cfg.connectTimeout,
		UDPTimeout:        cfg.udpTimeout,
		Flows:             obs.table,
		Unreachable:       obs.unreachable,
		Limits:            limits,
		FDLimit:           fdLimit,
		HandshakeTimeout:  cfg.limits.handshakeTimeout,
		HalfClosedTimeout: cfg.limits.halfClosedTimeout,
		Logger:            log,
		// validate keeps it within UDPTimeout.
		UDPUnrepliedTimeout: cfg.udpUnreplied.d,
	})
	if err != nil {
		rt.Close()
		obs.close()
		return nil, err
	}
	link, err := stack.NewTUNLink(fds, uint32(cfg.mtu), cfg.addresses.values, log, onDeviceGone, fwd.FlushUDP)
	if err == nil {
		var capture stack.CaptureOptions
		var ok bool
		if capture, ok, err = obs.captureOptions(); ok {
			inner := link
			if link, obs.capture, err = stack.NewCapture(inner, capture); err != nil {
				capture.Out.Close()
				inner.Close()
			}
		}
	}
	if err != nil {
		fwd.Close()
		rt.Close()
		obs.close()
		return nil, err
	}
	s, err := stack.New(stack.Options{Link: link, Handler: fwd, Logger: log, TCPMaxInFlight: cfg.limits.tcpMaxInFlight(),
		ICMPErrorRate: cfg.limits.icmpRate})
	if err != nil {
		link.Close()
		fwd.Close()
		rt.Close()
		obs.close()
		return nil, err
	}
	udpApp.Set(s)
	obs.start(s, rt)
	g := &gateway{stack: s, fwd: fwd, routing: rt, obs: obs, memDone: make(chan struct{})}
	var memCtx context.Context
	memCtx, g.stopMem = context.WithCancel(context.Background())
	go returnMemory(memCtx, func() int { return fwd.Usage().Flows }, log, g.memDone)
	return g, nil
}

// Close stops the API, ends every flow, then the stack, the in-process
// servers and what the observability flags opened.
func (g *gateway) Close() {
	// The stop is CPU-bound (resets, closing host sockets): it takes every
	// CPU, whatever --cpus gave the data path.
	runtime.GOMAXPROCS(runtime.NumCPU())
	g.obs.stopAPI()
	g.stopMem()
	<-g.memDone // after which nothing sets the GC percent again
	// The process is about to exit: a collection now would mark the heap
	// of every flow for nothing (a tenth of the stop's CPU time with
	// 10,000 flows). A memory limit (GOMEMLIMIT) still holds.
	debug.SetGCPercent(-1)
	// The forwarder first, which waits for every relay: the stack's
	// Close purges the receive queues that a relay may be sending from
	// without a copy (stack/appsend.go).
	g.fwd.Close()
	g.stack.Settle(resetQuiet, resetGrace)
	g.stack.Close()
	g.routing.Close()
	g.obs.close()
}
