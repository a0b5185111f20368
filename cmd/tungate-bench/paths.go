package main

import (
	"context"
	"fmt"
	"os/exec"
	"time"
)

// readyTimeout bounds how long a gateway may take to carry its first
// connection.
const readyTimeout = 15 * time.Second

// session is one path set up at one MTU, ready for clients.
type session struct {
	// netns is the path of the namespace the clients run in.
	netns string
	// gateway is the process carrying the traffic; nil for the kernel path.
	gateway *daemon
	// close stops the gateway and deletes the client namespace.
	close func()
}

// path is one way of getting from a client namespace to the server.
type path struct {
	name    string
	bestMTU int
	// missing says why the path cannot be measured, "" if it can.
	missing string
	start   func(ctx context.Context, b *bench, mtu int) (*session, error)
	// variant marks a -variant column, measured with the tungate one.
	variant bool
	// noProcess marks the kernel's own path: no gateway process whose
	// memory the idle test could measure.
	noProcess bool
}

// paths lists the paths in the order they are measured and shown.
func paths(tungate string, tungateMTU int, variants []variant) []path {
	ps := []path{
		{name: "kernel", bestMTU: 65520, start: startKernel, noProcess: true},
		{name: "tungate", bestMTU: tungateMTU, missing: tungateMissing(tungate), start: startTungate},
	}
	for _, v := range variants {
		ps = append(ps, path{name: v.name, bestMTU: tungateMTU, missing: tungateMissing(tungate), variant: true,
			start: func(ctx context.Context, b *bench, mtu int) (*session, error) {
				return startTungateWith(ctx, b, mtu, v.flags)
			}})
	}
	return append(ps, []path{
		{name: "tungate-run", bestMTU: tungateMTU, missing: tungateRunMissing(tungate), start: startTungateRun},
		{name: "pasta", bestMTU: 65520, missing: toolMissing("pasta", "passt"), start: startPasta},
		{name: "slirp4netns", bestMTU: 65520, missing: toolMissing("slirp4netns", "slirp4netns"), start: startSlirp},
	}...)
}

func toolMissing(tool, pkg string) string {
	if _, err := exec.LookPath(tool); err != nil {
		return fmt.Sprintf("%s not found: apt-get install %s", tool, pkg)
	}
	return ""
}

func tungateMissing(bin string) string {
	if err := exec.Command(bin, "--version").Run(); err != nil {
		return fmt.Sprintf("%s --version failed (%v): run make build", bin, err)
	}
	return ""
}

func tungateRunMissing(bin string) string {
	if m := tungateMissing(bin); m != "" {
		return m
	}
	if err := exec.Command(bin, "run", "--help").Run(); err != nil {
		return "not available: tungate run --help failed"
	}
	return ""
}

// startKernel wires a client namespace to the router with a veth: packets
// are routed by the kernel, with no gateway process.
func startKernel(ctx context.Context, b *bench, mtu int) (*session, error) {
	ns, err := b.topo.addKernelClient(ctx, mtu)
	s := &session{netns: netnsPath(ns), close: func() { b.topo.delNetns(ns) }}
	if err == nil {
		probeCtx, cancel := context.WithTimeout(ctx, readyTimeout)
		err = b.probe(probeCtx, s.netns)
		cancel()
	}
	if err != nil {
		s.close()
		return nil, fmt.Errorf("kernel path: %w", err)
	}
	return s, nil
}

// startTungate runs tungate in the router namespace with its device in a
// fresh client namespace (tungate adds the default routes there).
func startTungate(ctx context.Context, b *bench, mtu int) (*session, error) {
	return startTungateWith(ctx, b, mtu, nil)
}

// startTungateWith is startTungate with more flags, after -tungate-flags.
func startTungateWith(ctx context.Context, b *bench, mtu int, flags []string) (*session, error) {
	return b.startGateway(ctx, "tungate", func(ns string) []string {
		argv := append([]string{b.cfg.tungate, "--netns", ns, "--device", "tun://tgb0", "--mtu", fmt.Sprint(mtu), "--log-level", "warn"}, b.cfg.extra...)
		return append(argv, flags...)
	})
}

// startPasta runs pasta in the router namespace, attached to a fresh client
// namespace. pasta copies the router's address and routes into it.
// --runas 0 keeps the privileges needed to join the namespace; port
// forwarding is off because only outbound traffic is measured.
func startPasta(ctx context.Context, b *bench, mtu int) (*session, error) {
	return b.startGateway(ctx, "pasta", func(ns string) []string {
		return []string{"pasta", "-f", "-q", "--runas", "0", "--config-net", "--mtu", fmt.Sprint(mtu),
			"-t", "none", "-u", "none", "-T", "none", "-U", "none", "--netns", netnsPath(ns)}
	})
}

// startSlirp runs slirp4netns in the router namespace for a fresh client
// namespace (10.0.2.100/24, default route via 10.0.2.2).
func startSlirp(ctx context.Context, b *bench, mtu int) (*session, error) {
	return b.startGateway(ctx, "slirp", func(ns string) []string {
		return []string{"slirp4netns", "--configure", fmt.Sprintf("--mtu=%d", mtu),
			"--netns-type=path", netnsPath(ns), "tap0"}
	})
}

// startGateway creates a client namespace, starts argv(ns) in the router
// namespace and waits until a client there reaches the server.
func (b *bench) startGateway(ctx context.Context, kind string, argv func(ns string) []string) (*session, error) {
	ns, err := b.topo.addClient(ctx, kind)
	if err != nil {
		b.topo.delNetns(ns)
		return nil, err
	}
	d, err := startDaemon(netnsPath(b.topo.router), argv(ns)...)
	if err != nil {
		b.topo.delNetns(ns)
		return nil, err
	}
	s := &session{netns: netnsPath(ns), gateway: d, close: func() {
		d.stop(5 * time.Second)
		b.topo.delNetns(ns)
	}}
	if err := d.waitReady(ctx, readyTimeout, func(ctx context.Context) error { return b.probe(ctx, s.netns) }); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// startTungateRun runs "tungate run -- sleep" in the router namespace; the
// clients join the namespace of that sleep.
func startTungateRun(ctx context.Context, b *bench, mtu int) (*session, error) {
	argv := append([]string{b.cfg.tungate, "run", "--mtu", fmt.Sprint(mtu), "--log-level", "warn"}, b.cfg.extra...)
	d, err := startDaemon(netnsPath(b.topo.router), append(argv, "--", "sleep", "1000000")...)
	if err != nil {
		return nil, err
	}
	s := &session{gateway: d, close: func() { d.stop(5 * time.Second) }}
	err = d.waitReady(ctx, readyTimeout, func(ctx context.Context) error {
		if s.netns == "" {
			pid, err := findDescendant(d.pid(), "sleep")
			if err != nil {
				return err
			}
			ns := fmt.Sprintf("/proc/%d/ns/net", pid)
			if err := widenPorts(ctx, ns); err != nil {
				return err
			}
			s.netns = ns
		}
		return b.probe(ctx, s.netns)
	})
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}
