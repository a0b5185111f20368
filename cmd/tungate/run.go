package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/tungate/tungate/forwarder/publish"
	"github.com/tungate/tungate/stack/appns"
)

// setupChildArg, right after "run", makes the program the namespace setup
// process (appns.ChildMain). Users never type it.
const setupChildArg = "--internal-namespace-setup"

// isSetupChild reports whether args (after the program name) make this
// process the namespace setup process.
func isSetupChild(args []string) bool {
	return len(args) > 1 && args[0] == "run" && args[1] == setupChildArg
}

// nsDevice is the TUN device's name inside the namespace.
const nsDevice = "tun0"

// runCommand implements `tungate run [flags] -- CMD [ARGS...]`.
func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == setupChildArg {
		appns.ChildMain() // never returns
	}
	rc, err := parseRunFlags(args, stdout)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: rc.gw.logLevel.level}))
	// Caught from the start, so that a signal during setup stops tungate
	// cleanly instead of killing it with the namespace half made.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	return runInNamespace(ctx, rc, log, sigs, stderr)
}

// runSession is everything `tungate run` starts, in start order.
type runSession struct {
	// closing silences the device-gone warning that stopping causes.
	closing atomic.Bool
	ns      *appns.Namespace
	gw      *gateway
	pub     *publish.Publisher
	// resolvKeep are the host's resolv.conf lines (search, options) that
	// a resolv.conf naming the namespace's resolver keeps.
	resolvKeep []string
}

// close stops in reverse order: no new flows, then the flows, then the
// namespace (whatever runs in it is killed) and its device.
func (s *runSession) close() {
	s.closing.Store(true)
	if s.pub != nil {
		s.pub.Close()
	}
	if s.gw != nil {
		s.gw.Close()
	}
	if s.ns != nil {
		s.ns.Close()
	}
}

func runInNamespace(ctx context.Context, rc *runConfig, log *slog.Logger, sigs <-chan os.Signal, stderr io.Writer) error {
	if rc.netnsPath != "" {
		cleared, err := appns.ClearStaleNetNS(rc.netnsPath)
		if err != nil {
			return fmt.Errorf("run: --netns-path: %w", err)
		}
		if cleared {
			log.Warn("removed a namespace left at --netns-path by an instance that was killed (no process was in it); making a new one", "path", rc.netnsPath)
		}
	}
	s, err := startSession(rc, log)
	if err != nil {
		return err
	}
	defer s.close()
	defer signalStopping(log)
	if rc.netnsPath != "" {
		undo, err := s.ns.BindNetNS(rc.netnsPath)
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
		defer writeNetNSDNS(etcNetNSDir, rc.netnsPath, nsResolverAddrs, s.resolvKeep, log).remove()
		dropPrivileges(runCaps(rc), rc.gw.seccomp, log)
		return keepNamespace(ctx, s, rc, undo, log, sigs)
	}
	dropPrivileges(runCaps(rc), rc.gw.seccomp, log)
	logServing(s, rc, log)
	select {
	case sig := <-sigs:
		return &exitError{code: 128 + int(sig.(syscall.Signal))}
	default:
	}
	if err := s.ns.Run(); err != nil {
		var ee *appns.ExecError
		if errors.As(err, &ee) {
			fmt.Fprintf(stderr, "tungate: run: %v\n", ee.Err)
			return &exitError{code: ee.Code}
		}
		return err
	}
	st := waitForwarding(s.ns, sigs, log)
	if code := exitStatus(st); code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// startSession makes the namespace and serves its device.
func startSession(rc *runConfig, log *slog.Logger) (*runSession, error) {
	var cred *appns.Credential
	rootless := os.Geteuid() != 0
	if rc.user != "" {
		if rootless {
			return nil, usageErrorf("run: --user needs root: without root, CMD already runs as you")
		}
		var err error
		if cred, err = appns.LookupUser(rc.user); err != nil {
			return nil, fmt.Errorf("run: --user: %w", err)
		}
	}
	d := newHostDNS(rc.gw.dns.values, log)
	rc.gw.dns.values = d.servers
	var files nsFiles
	if len(rc.command) > 0 {
		var err error
		if files, err = writeNSFiles(d.keep); err != nil {
			return nil, err
		}
		// The setup process has bind-mounted them once Start returns.
		defer files.remove()
	}
	s := &runSession{resolvKeep: d.keep}
	var err error
	s.ns, err = appns.Start(appns.Config{
		ChildArgs:  []string{"run", setupChildArg},
		Device:     nsDevice,
		MTU:        rc.gw.mtu,
		Queues:     rc.gw.tunQueues,
		Addresses:  rc.gw.addresses.values,
		ResolvConf: files.resolvConf,
		NSSwitch:   files.nsswitch,
		Hide:       appns.ResolverSockets(),
		Rootless:   rootless,
		Command:    rc.command,
		User:       cred,
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
	})
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	if w := s.ns.Warning(); w != "" {
		log.Warn(w)
	}
	if err := s.serve(rc, d, log); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// serve starts the gateway on the namespace's device and the published
// ports.
func (s *runSession) serve(rc *runConfig, d *hostDNS, log *slog.Logger) error {
	var err error
	s.gw, err = newGateway(&rc.gw, s.ns.TUNQueues(), log, d.routing(rc), func(err error) {
		if !s.closing.Load() {
			log.Warn("the namespace's device is gone: CMD has no network any more", "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if len(rc.publish.values) == 0 {
		return nil
	}
	target, ok := firstAddr(rc.gw.addresses.values, netip.Addr.Is4)
	if !ok {
		return errors.New("run: --publish needs an IPv4 address on the device")
	}
	// Published flows come from the resolver addresses, which the stack
	// must own to dial from them.
	if err := s.gw.stack.AddAddress(netip.PrefixFrom(nsResolverAddrs[0], 32)); err != nil {
		return fmt.Errorf("run: --publish: %w", err)
	}
	target6, ok := firstAddr(rc.gw.addresses.values, netip.Addr.Is6)
	if ok {
		if err := s.gw.stack.AddAddress(netip.PrefixFrom(nsResolverAddrs[1], 128)); err != nil {
			return fmt.Errorf("run: --publish: %w", err)
		}
	}
	s.pub, err = publish.Start(publish.Options{
		Stack:          s.gw.stack,
		Target:         target,
		Target6:        target6,
		Ports:          rc.publish.values,
		ConnectTimeout: rc.gw.connectTimeout,
		UDPTimeout:     rc.gw.udpTimeout,
		Flows:          s.gw.obs.table,
		Logger:         log,
	})
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	return nil
}

// firstAddr returns the first address of ps that is of the family is
// tests (netip.Addr.Is4 or Is6).
func firstAddr(ps []netip.Prefix, is func(netip.Addr) bool) (netip.Addr, bool) {
	for _, p := range ps {
		if is(p.Addr()) {
			return p.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// logServing says that the namespace is ready (msg=serving, as the
// gateway says it).
func logServing(s *runSession, rc *runConfig, log *slog.Logger) {
	netns := s.ns.NetNSPath()
	if rc.netnsPath != "" {
		netns = rc.netnsPath
	}
	log.Info("serving", "device", nsDevice, "netns", netns, "pid", s.ns.Pid(), "mtu", rc.gw.mtu,
		"resolver", nsResolverAddrs[0], "upstream_dns", fmt.Sprint(rc.gw.dns.values))
	rc.gw.ready.signalReady(log)
}

// keepNamespace serves the namespace, bind-mounted at its path, until ctx
// ends or a signal comes, and then runs undo (which unmounts it).
func keepNamespace(ctx context.Context, s *runSession, rc *runConfig, undo func() error, log *slog.Logger, sigs <-chan os.Signal) error {
	logServing(s, rc, log)
	select {
	case <-ctx.Done():
	case <-sigs:
	}
	if err := undo(); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	return nil
}

// exitStatus is CMD's exit status, or 128+N if signal N killed it.
func exitStatus(st *os.ProcessState) int {
	if st == nil {
		return exitFailure
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}
