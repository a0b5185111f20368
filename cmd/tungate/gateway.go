package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"

	"github.com/tungate/tungate/forwarder"
	"github.com/tungate/tungate/forwarder/proxy"
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
	gw, err := newGateway(cfg, dev.FD(), log, gatewayHooks{}, func(err error) {
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
	log.Info("serving", "device", dev.Name(), "netns", cfg.netns, "mtu", cfg.mtu)
	select {
	case <-ctx.Done():
		err = nil
	case err = <-devGone:
	}
	drops := gw.stack.Counters()
	gw.Close()
	err = errors.Join(err, routing.stop(err != nil))
	log.Info("stopped", "device", dev.Name(), "drops", drops)
	return err
}

// gateway is a stack and a forwarder wired together on one device.
type gateway struct {
	stack *stack.Stack
	fwd   *forwarder.Forwarder
}

// gatewayHooks are what `tungate run` adds to a plain gateway; the zero
// value adds nothing.
type gatewayHooks struct {
	// wrapDialer, if set, wraps the upstream dialer.
	wrapDialer func(proxy.Dialer) proxy.Dialer
	// allow is forwarder.Options.Allow.
	allow func(network string, dst netip.AddrPort) bool
}

// newGateway serves the TUN device fd (which it does not take ownership
// of).
func newGateway(cfg *gatewayConfig, fd int, log *slog.Logger, hooks gatewayHooks, onDeviceGone func(error)) (*gateway, error) {
	setCPUs(cfg.cpus, log)
	up, err := newUpstream(&cfg.proxy, &proxy.Direct{Interface: cfg.iface, Mark: cfg.fwmark, Timeout: cfg.connectTimeout}, log)
	if err != nil {
		return nil, err
	}
	dialer := up.dialer
	if hooks.wrapDialer != nil {
		dialer = hooks.wrapDialer(dialer)
	}
	var echo forwarder.EchoSender = &forwarder.HostPinger{Interface: cfg.iface, Mark: cfg.fwmark}
	if up.proxied {
		echo = nil // a proxy carries no ICMP, and nothing may go around it
	}
	// The forwarder is the stack's handler, so it exists first; the hook
	// finds the stack once it does.
	var st atomic.Pointer[stack.Stack]
	fwd, err := forwarder.New(forwarder.Options{
		PortUnreachable: func(src, dst netip.AddrPort) {
			if s := st.Load(); s != nil {
				s.PortUnreachable(src, dst)
			}
		},
		Dialer:         up.outer(dialer),
		Allow:          up.allow(hooks.allow),
		Echo:           echo,
		ConnectTimeout: cfg.connectTimeout,
		UDPTimeout:     cfg.udpTimeout,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	link, err := stack.NewTUNLink(fd, uint32(cfg.mtu), log, onDeviceGone)
	if err != nil {
		fwd.Close()
		return nil, err
	}
	s, err := stack.New(stack.Options{Link: link, Handler: fwd, Logger: log})
	if err != nil {
		link.Close()
		fwd.Close()
		return nil, err
	}
	st.Store(s)
	return &gateway{stack: s, fwd: fwd}, nil
}

// Close ends every flow, then the stack.
func (g *gateway) Close() {
	g.fwd.Close()
	g.stack.Close()
}
