package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config is the benchmark's command line.
type config struct {
	tungate    string        // tungate binary
	runs       int           // repetitions of each measurement (median reported)
	iperfTime  time.Duration // length of one iperf3 run
	loadTime   time.Duration // length of one connrate / udprr run
	idleConns  int           // idle TCP connections held for the memory test
	tungateMTU int           // tungate's best MTU
	outDir     string        // where the JSON goes
	only       []string      // paths to measure; empty means all
	rows       []string      // row groups to measure (rowGroups); empty means all
	udpSteps   int           // UDP capacity trials after the unlimited run
	extra      []string      // flags added to every tungate command line
	variants   []variant     // more tungate columns, each with flags of its own
}

// variant is a column "tungate-NAME": tungate (--netns) with more flags,
// to set a setting's effect beside the default in one run.
type variant struct {
	name  string
	flags []string
}

// parseVariant parses -variant NAME=FLAGS.
func parseVariant(s string) (variant, error) {
	name, flags, ok := strings.Cut(s, "=")
	if !ok || name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
		return variant{}, fmt.Errorf("-variant %q: want NAME=FLAGS, NAME of lower-case letters and digits", s)
	}
	return variant{name: "tungate-" + name, flags: strings.Fields(flags)}, nil
}

// rowGroups are the names -rows accepts, each a group of rows measured
// together.
var rowGroups = []string{"tcp", "conn", "udprr", "udpbulk", "idle"}

// row reports whether row group g is to be measured.
func (c config) row(g string) bool { return len(c.rows) == 0 || slices.Contains(c.rows, g) }

func parseConfig(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("tungate-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	var quick bool
	var only, rows, extra string
	fs.StringVar(&cfg.tungate, "tungate", "bin/tungate", "tungate binary to measure")
	fs.BoolVar(&quick, "quick", false, "one run, 1-second load tests, 1,000 idle connections, 3 UDP capacity trials: for trying it out")
	fs.IntVar(&cfg.runs, "runs", 3, "runs of each measurement; the median is reported")
	fs.DurationVar(&cfg.iperfTime, "iperf-time", 2*time.Second, "length of one iperf3 run (whole seconds)")
	fs.DurationVar(&cfg.loadTime, "load-time", 2*time.Second, "length of one connection-rate or UDP run")
	fs.IntVar(&cfg.idleConns, "idle-conns", 10000, "idle TCP connections for the memory test")
	fs.IntVar(&cfg.tungateMTU, "tungate-mtu", 65520, "tungate's best MTU")
	fs.StringVar(&cfg.outDir, "out", "bench/results", "directory for the JSON results")
	fs.StringVar(&only, "only", "", "comma-separated paths to measure (kernel,tungate,tungate-run,pasta,slirp4netns); default all")
	fs.StringVar(&rows, "rows", "", "comma-separated row groups to measure ("+strings.Join(rowGroups, ",")+"); default all")
	fs.IntVar(&cfg.udpSteps, "udp-steps", 6, "trials of the UDP capacity search after the unlimited run")
	fs.Func("variant", "add a column tungate-`NAME=FLAGS`: tungate --netns with these flags too, separated by spaces (for example \"mq2=--tun-queues 2 --cpus 2\"); repeatable, measured whenever -only is empty or names tungate or the column", func(s string) error {
		v, err := parseVariant(s)
		cfg.variants = append(cfg.variants, v)
		return err
	})
	fs.StringVar(&extra, "tungate-flags", "", "flags added to both tungate command lines, separated by spaces (for example \"--metrics 9467\" to measure what metrics cost)")
	if err := fs.Parse(args); err != nil {
		return cfg, fmt.Errorf("%w: %v", errUsage, err)
	}
	cfg.extra = strings.Fields(extra)
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("%w: unknown subcommand %q (want serve, probe, connrate, udprr or idle)", errUsage, fs.Arg(0))
	}
	if quick {
		cfg.runs, cfg.iperfTime, cfg.loadTime, cfg.idleConns = 1, 2*time.Second, time.Second, 1000
		cfg.udpSteps = min(cfg.udpSteps, 3)
	}
	if cfg.runs < 1 || cfg.iperfTime < time.Second || cfg.loadTime <= 0 || cfg.idleConns < 1 || cfg.udpSteps < 0 {
		return cfg, fmt.Errorf("%w: -runs, -idle-conns must be >= 1, -udp-steps >= 0, -iperf-time >= 1s, -load-time > 0", errUsage)
	}
	if only != "" {
		cfg.only = strings.Split(only, ",")
	}
	if rows != "" {
		cfg.rows = strings.Split(rows, ",")
		for _, g := range cfg.rows {
			if !slices.Contains(rowGroups, g) {
				return cfg, fmt.Errorf("%w: -rows: unknown group %q (want some of %s)", errUsage, g, strings.Join(rowGroups, ","))
			}
		}
	}
	return cfg, nil
}

// bench is one benchmark run: its topology, servers and results.
type bench struct {
	cfg     config
	self    string // this binary, run inside namespaces as the load generator
	topo    *topology
	hasPerf bool // iperf3 is installed
	res     *results
	start   time.Time
	log     io.Writer
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("creating network namespaces needs root: run as root (sudo make bench)")
	}
	if err := raiseFileLimit(cfg.idleConns + 1000); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	b := &bench{cfg: cfg, self: self, res: newResults(cfg), start: time.Now(), log: stderr}
	_, lookErr := exec.LookPath("iperf3")
	b.hasPerf = lookErr == nil
	if !b.hasPerf {
		fmt.Fprintln(stderr, "iperf3 not found: skipping throughput (apt-get install iperf3)")
	}
	if err := b.runAll(ctx); err != nil {
		return err
	}
	b.res.finish(time.Since(b.start))
	b.res.printTable(stdout)
	file, err := b.res.save(cfg.outDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nJSON: %s (took %s)\n", file, time.Since(b.start).Round(time.Second))
	return nil
}

// runAll builds the topology and servers, measures every path and always
// removes what it made.
func (b *bench) runAll(ctx context.Context) error {
	topo, err := newTopology(ctx)
	if err != nil {
		return err
	}
	b.topo = topo
	defer topo.Close()
	srv, err := startDaemon(netnsPath(topo.server), b.self, "serve", "-addr", serverIP)
	if err != nil {
		return err
	}
	defer srv.stop(2 * time.Second)
	if err := b.waitServer(ctx, srv, requestPort); err != nil {
		return err
	}
	if b.hasPerf {
		perf, err := startDaemon(netnsPath(topo.server), "iperf3", "-s", "-B", serverIP, "-p", fmt.Sprint(iperfPort))
		if err != nil {
			return err
		}
		defer perf.stop(2 * time.Second)
		if err := b.waitServer(ctx, perf, iperfPort); err != nil {
			return err
		}
	}
	var measured []path
	for _, p := range paths(b.cfg.tungate, b.cfg.tungateMTU, b.cfg.variants) {
		switch {
		case len(b.cfg.only) > 0 && !slices.Contains(b.cfg.only, p.name) &&
			!(p.variant && slices.Contains(b.cfg.only, "tungate")):
		case p.missing != "":
			b.logf("%s: skipped: %s", p.name, p.missing)
			b.res.skip(p.name, p.missing)
		default:
			b.res.path(p.name) // keeps the column order
			measured = append(measured, p)
		}
	}
	b.measureRounds(ctx, measured)
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return nil
}

func (b *bench) waitServer(ctx context.Context, d *daemon, port int) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := waitListening(ctx, d.pid(), port); err != nil {
		return fmt.Errorf("%s: %w: %s", d.name, err, d.logs.String())
	}
	return nil
}

// probe checks once that a client in netns reaches the server.
func (b *bench) probe(ctx context.Context, netns string) error {
	_, err := b.runClient(ctx, netns, "probe", "-addr", fmt.Sprintf("%s:%d", serverIP, requestPort), "-d", "1s")
	return err
}

// runClient runs a load-generator subcommand of this binary inside netns
// and returns its stdout.
func (b *bench) runClient(ctx context.Context, netns string, args ...string) ([]byte, error) {
	argv := append([]string{"--net=" + netns, "--", b.self}, args...)
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, "nsenter", argv...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "[%4.0fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

// raiseFileLimit raises RLIMIT_NOFILE to at least need, explicitly so that
// children (slirp4netns, the load generators) inherit it: 10,000 idle
// connections need more than the usual 1,024 descriptors.
func raiseFileLimit(need int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	want := max(lim.Max, uint64(need))
	err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want})
	if err == nil || lim.Max < uint64(need) {
		if err != nil {
			return fmt.Errorf("raise RLIMIT_NOFILE to %d (hard limit %d): %w: lower -idle-conns", need, lim.Max, err)
		}
		return nil
	}
	// Without CAP_SYS_RESOURCE the hard limit cannot grow, but it is enough.
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", lim.Max, err)
	}
	return nil
}
