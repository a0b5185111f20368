package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tungate/tungate/forwarder"
	"github.com/tungate/tungate/stack"
	"github.com/tungate/tungate/stack/tun"
)

// serve runs the gateway on the device cfg names until ctx ends.
func serve(ctx context.Context, cfg *gatewayConfig, log *slog.Logger) error {
	dev, err := tun.Open(tun.Config{Name: cfg.device.name, FD: cfg.device.fd, NetNS: cfg.netns, Offload: true})
	if err != nil {
		return err
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
		if errors.Is(err, tun.ErrIPv6Disabled) {
			log.Warn("IPv6 is disabled in the device's namespace; serving IPv4 only", "err", err)
		} else if err != nil {
			return err
		}
	}
	devGone := make(chan error, 1)
	gw, err := newGateway(cfg, dev.FD(), log, nil, func(err error) {
		select {
		case devGone <- fmt.Errorf("device %s: %w", dev.Name(), err):
		default:
		}
	})
	if err != nil {
		return err
	}
	log.Info("serving", "device", dev.Name(), "netns", cfg.netns, "mtu", cfg.mtu)
	select {
	case <-ctx.Done():
		err = nil
	case err = <-devGone:
	}
	drops := gw.stack.Counters()
	gw.Close()
	log.Info("stopped", "device", dev.Name(), "drops", drops, "refused", limitsSummary(gw.fwd))
	return err
}

// resetGrace is how long the stack outlives the flows' resets on stop.
const resetGrace = 100 * time.Millisecond

// gateway is a stack, a forwarder and its router wired together on one
// device.
type gateway struct {
	stack   *stack.Stack
	fwd     *forwarder.Forwarder
	routing *routing
	// stopMem stops the memory returner (memreturn.go), which closes
	// memDone.
	stopMem context.CancelFunc
	memDone chan struct{}
}

// newGateway serves the TUN device fd (which it does not take ownership
// of); run, if not nil, adds the routing of `tungate run`.
func newGateway(cfg *gatewayConfig, fd int, log *slog.Logger, run *runRouting, onDeviceGone func(error)) (*gateway, error) {
	setCPUs(cfg.cpus, log)
	rt, err := newRouting(cfg, run, log)
	if err != nil {
		return nil, err
	}
	limits, fdLimit := cfg.limits.forwarderLimits(log)
	fwd, err := forwarder.New(forwarder.Options{
		Router:            rt.router,
		Echo:              &forwarder.HostPinger{Interface: cfg.iface, Mark: cfg.fwmark},
		ConnectTimeout:    cfg.connectTimeout,
		UDPTimeout:        cfg.udpTimeout,
		Limits:            limits,
		FDLimit:           fdLimit,
		HandshakeTimeout:  cfg.limits.handshakeTimeout,
		HalfClosedTimeout: cfg.limits.halfClosedTimeout,
		Logger:            log,
	})
	if err != nil {
		rt.Close()
		return nil, err
	}
	link, err := stack.NewTUNLink(fd, uint32(cfg.mtu), log, onDeviceGone)
	if err != nil {
		fwd.Close()
		rt.Close()
		return nil, err
	}
	s, err := stack.New(stack.Options{Link: link, Handler: fwd, Logger: log, TCPMaxInFlight: cfg.limits.tcpMaxInFlight()})
	if err != nil {
		link.Close()
		fwd.Close()
		rt.Close()
		return nil, err
	}
	g := &gateway{stack: s, fwd: fwd, routing: rt, memDone: make(chan struct{})}
	var memCtx context.Context
	memCtx, g.stopMem = context.WithCancel(context.Background())
	go returnMemory(memCtx, func() int { return fwd.Usage().Flows }, log, g.memDone)
	return g, nil
}

// Close ends every flow, then the stack and the in-process servers.
func (g *gateway) Close() {
	g.stopMem()
	<-g.memDone
	g.fwd.Close()
	// An app whose receive window is full (a paused download) takes a
	// reset only at the exact sequence number it expects; for any other
	// it sends a challenge ACK, which the stack answers with an exact
	// reset while it still runs: give those a moment.
	time.Sleep(resetGrace)
	g.stack.Close()
	g.routing.Close()
}
