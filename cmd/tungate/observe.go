package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	"github.com/tungate/tungate/cmd/internal/control"
	"github.com/tungate/tungate/forwarder/dns"
	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/stack"
)

// observer is what the observability flags start around one gateway: the
// flow table (unless nothing reads it), the flow log, the API on --metrics
// and the control socket (on by default), and the pcap capture.
// Everything it opens, close ends.
type observer struct {
	cfg     *observeConfig
	log     *slog.Logger
	table   *flows.Table
	flowLog *flows.Log
	logFile *os.File // the --flow-log file; nil for stderr or none
	api     *control.Server
	lns     []net.Listener // served once start is called
	guard   *control.Guard
	capture *stack.Capture
	// dns counts the queries tungate answers in-process.
	dns dns.QueryCounts
}

// newObserver opens what cfg asks for. controlName names the default
// control socket (DEVICE, or the PID, .sock); its listeners are bound now,
// so that the forwarder can be told the address to keep out of reach, and
// served from start on.
func newObserver(cfg *observeConfig, controlName string, log *slog.Logger) (o *observer, err error) {
	o = &observer{cfg: cfg, log: log, api: control.New(log)}
	defer func() {
		if err != nil {
			o.close()
		}
	}()
	var sink func(flows.Record)
	if cfg.flowLog != "" {
		var out io.Writer = os.Stderr
		if cfg.flowLog != "-" {
			if o.logFile, err = os.OpenFile(cfg.flowLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
				return o, fmt.Errorf("--flow-log: %w", err)
			}
			out = o.logFile
		}
		o.flowLog = flows.NewLog(flows.LogOptions{Out: out, Buffer: cfg.flowLogQueue, Logger: log})
		sink = o.flowLog.Add
	}
	o.table = flows.New(flows.Options{Sink: sink})
	if a := cfg.metrics.addr; a.IsValid() {
		ln, err := net.Listen("tcp", a.String())
		if err != nil {
			return o, fmt.Errorf("--metrics: %w", err)
		}
		o.lns = append(o.lns, ln)
		o.guard = control.NewGuard(a)
		if !a.Addr().IsLoopback() {
			log.Warn("--metrics listens beyond loopback: whoever reaches it sees every flow's addresses", "addr", a)
		}
	}
	if err := o.listenControl(controlName); err != nil {
		return o, err
	}
	if len(o.lns) == 0 && o.flowLog == nil {
		// Nobody will read the table (--control none, no --metrics, no
		// --flow-log): the forwarder then counts nothing at all.
		o.table.Close()
		o.table = nil
	}
	return o, nil
}

// listenControl binds the control socket: --control PATH (whose failure
// is fatal), none, or the default path (whose failure is a warning).
func (o *observer) listenControl(name string) error {
	path := o.cfg.control
	switch path {
	case controlNone:
		return nil
	case "":
		dir, err := controlDir()
		if err != nil {
			// Not asked for, so not worth a warning on CMD's terminal.
			o.log.Info("no control socket: " + err.Error())
			return nil
		}
		ln, err := control.ListenUnix(filepath.Join(dir, name+".sock"), o.log)
		if err != nil {
			o.log.Warn("no control socket", "err", err)
			return nil
		}
		sweepControlDir(dir, o.log)
		o.lns = append(o.lns, ln)
		return nil
	}
	ln, err := control.ListenUnix(path, o.log)
	if err != nil {
		return fmt.Errorf("--control: %w", err)
	}
	o.lns = append(o.lns, ln)
	return nil
}

// controlName is the default control socket's name: the device's as
// root, the process's ID otherwise, and under `tungate run` (whose device
// is tun0 in every instance) run-PID as root.
func controlName(cfg *gatewayConfig, run bool) string {
	pid := strconv.Itoa(os.Getpid())
	switch {
	case os.Geteuid() != 0:
		return pid
	case run:
		return "run-" + pid
	case cfg.device.fd >= 0:
		return "fd" + strconv.Itoa(cfg.device.fd) + "-" + pid
	}
	return cfg.device.name
}

// unreachable is forwarder.Options.Unreachable: flows from the tunnel
// never reach the API's TCP listener, not even through the host-loopback
// mapping of `tungate run`.
func (o *observer) unreachable(dst netip.AddrPort) bool { return o.guard.Reaches(dst) }

// captureOptions returns the --pcap capture's options, opening its file;
// ok is false without --pcap.
func (o *observer) captureOptions() (opts stack.CaptureOptions, ok bool, err error) {
	if o.cfg.pcap == "" {
		return opts, false, nil
	}
	f, err := os.OpenFile(o.cfg.pcap, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return opts, false, fmt.Errorf("--pcap: %w", err)
	}
	return stack.CaptureOptions{Out: f, Name: o.cfg.pcap, SnapLen: uint32(o.cfg.pcapSnapLen),
		MaxSize: int64(o.cfg.pcapMaxSize), Logger: o.log}, true, nil
}

// start serves the API, reporting on s and rt.
func (o *observer) start(s *stack.Stack, rt *routing) {
	if len(o.lns) == 0 {
		return
	}
	src := &control.Sources{Flows: o.table, FlowLog: o.flowLog, Stack: s, DNS: &o.dns, Capture: o.capture}
	if rt.fakeNames != nil {
		src.FakeDNS = rt.fakeNames
	}
	o.api.SetSources(src)
	for _, ln := range o.lns {
		o.api.Serve(ln)
		o.log.Debug("control API", "addr", ln.Addr())
	}
}

// stopAPI stops answering; the flows go on until the gateway closes.
func (o *observer) stopAPI() {
	o.api.Close()
	for _, ln := range o.lns {
		ln.Close() // those never served
	}
}

// close stops everything, after the gateway: the flows have finished
// into the table and the log, and no packet reaches the capture. It is
// idempotent.
func (o *observer) close() {
	o.stopAPI()
	if o.table != nil {
		o.table.Close()
	}
	if o.flowLog != nil {
		o.flowLog.Close()
	}
	if o.logFile != nil {
		o.logFile.Close()
	}
	if o.capture != nil {
		if err := o.capture.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			o.log.Warn("pcap", "err", err)
		}
	}
}
