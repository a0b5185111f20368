package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"
)

// coreBestMTU is the veth MTU for the best-MTU scenario (veth allows 65535).
const coreBestMTU = 65520

const mib = 1 << 20

// idleOpenTime bounds the opening of the idle connections: slirp4netns
// slows down as it holds more, and the whole run must stay under 10 minutes.
const idleOpenTime = 30 * time.Second

// idleSettleTime is how long the idle test holds its connections before
// it reads the gateway's RSS (see measureIdle).
const idleSettleTime = 8 * time.Second

// measureRounds measures every path once per round, alternating paths
// within a round so that load from elsewhere on a shared machine spreads
// over all of them instead of landing on one. Each session is fresh. The
// small-packet tests run at MTU 1500 only, since MTU does not matter to
// them, and so do the UDP bulk tests (1,400-byte datagrams); the
// idle-memory test (on a session of its own) and the UDP capacity search
// run in the last round only, as they are slow. The best-MTU scenario has only TCP rows.
func (b *bench) measureRounds(ctx context.Context, ps []path) {
	scenarios := []string{"1500"}
	if b.cfg.row("tcp") {
		scenarios = append(scenarios, "best")
	}
	for run := 1; run <= b.cfg.runs; run++ {
		for _, sc := range scenarios {
			core := 1500
			if sc == "best" {
				core = coreBestMTU
			}
			if err := b.topo.setCoreMTU(ctx, core); err != nil {
				b.res.fail("kernel", err)
				return
			}
			for _, p := range ps {
				if ctx.Err() != nil {
					return
				}
				b.measureSession(ctx, p, sc, run == b.cfg.runs)
				if sc == "1500" && run == b.cfg.runs && b.cfg.row("idle") && ctx.Err() == nil {
					b.measureIdleSession(ctx, p)
				}
			}
		}
	}
}

// measureSession starts path p in scenario sc ("1500" or "best") and runs
// one round of its tests.
func (b *bench) measureSession(ctx context.Context, p path, sc string, last bool) {
	mtu := 1500
	if sc == "best" {
		mtu = p.bestMTU
	}
	s, err := p.start(ctx, b, mtu)
	if err != nil {
		b.res.fail(p.name, fmt.Errorf("start at MTU %d: %w", mtu, err))
		return
	}
	defer s.close()
	b.logf("%s: ready at MTU %d", p.name, mtu)
	if sc == "best" && last {
		b.res.add(p.name, "best_mtu", float64(mtu))
	}
	if b.cfg.row("tcp") {
		b.measureThroughput(ctx, p.name, s, sc)
	}
	if sc == "1500" {
		b.measureSmall(ctx, p.name, s)
		if b.cfg.row("udpbulk") {
			b.measureUDPBulk(ctx, p.name, s, last)
		}
	}
	if s.gateway != nil {
		if err := s.gateway.exited(); err != nil {
			b.res.fail(p.name, err)
		}
	}
}

// measureIdleSession runs the idle-memory test on a gateway of its own:
// in the session of the other rows, its RSS before the test would hold
// what their peaks left (relay buffers, the connection-rate burst), and
// the difference would understate each connection.
func (b *bench) measureIdleSession(ctx context.Context, p path) {
	if p.noProcess {
		// Nothing to measure; and starting it again at once could
		// meet the veth of the session just closed, which the kernel
		// removes a moment later ("File exists").
		return
	}
	s, err := p.start(ctx, b, 1500)
	if err != nil {
		b.res.fail(p.name, fmt.Errorf("idle connections: start: %w", err))
		return
	}
	defer s.close()
	if s.gateway == nil {
		return
	}
	if err := b.measureIdle(ctx, p.name, s); err != nil {
		b.res.fail(p.name, fmt.Errorf("idle connections: %w", err))
	}
}

// measureThroughput runs iperf3 up and down with 1 and 4 streams, and the
// gateway's CPU time per GB during each run.
func (b *bench) measureThroughput(ctx context.Context, name string, s *session, sc string) {
	if !b.hasPerf {
		return
	}
	for _, f := range flows() {
		if ctx.Err() != nil {
			return
		}
		id := f.id() + "_" + sc
		cpu0, cpuErr := b.gatewayCPU(s)
		r, err := b.iperf(ctx, s.netns, f.dir == "down", f.streams)
		if err != nil {
			b.res.fail(name, fmt.Errorf("tcp %s: %w", id, err))
			continue
		}
		cpu1, cpuErr1 := b.gatewayCPU(s)
		b.res.add(name, "tcp_"+id, r.bitsPerSecond/1e9)
		msg := fmt.Sprintf("%s: tcp %s: %.2f Gbit/s", name, id, r.bitsPerSecond/1e9)
		if s.gateway != nil && cpuErr == nil && cpuErr1 == nil && r.bytes > 0 {
			perGB := cpu1.since(cpu0).total() / (r.bytes / 1e9)
			b.res.add(name, "cpu_"+id, perGB)
			msg += fmt.Sprintf(", %.2f CPU s/GB", perGB)
		}
		b.logf("%s", msg)
	}
	if s.gateway != nil {
		if hwm, err := memoryBytes(s.gateway.pid(), "VmHWM"); err == nil {
			b.res.add(name, "peak_rss_"+sc, hwm/mib)
		}
	}
}

func (b *bench) gatewayCPU(s *session) (cpuTime, error) {
	if s.gateway == nil {
		return cpuTime{}, nil
	}
	return cpuTimes(s.gateway.pid())
}

// measureSmall runs the connection-rate and UDP request/response tests.
func (b *bench) measureSmall(ctx context.Context, name string, s *session) {
	if b.cfg.row("conn") {
		b.measureConnRate(ctx, name, s)
	}
	if b.cfg.row("udprr") {
		b.measureUDPRoundTrips(ctx, name, s)
	}
}

// measureConnRate runs the connection-rate test and the gateway's CPU
// seconds per 1,000 connections during it.
func (b *bench) measureConnRate(ctx context.Context, name string, s *session) {
	var cr connRateResult
	cpu0, cpuErr := b.gatewayCPU(s)
	if err := b.clientJSON(ctx, s.netns, &cr, "connrate", "-addr", serverAddrPort(requestPort), "-c", "50", "-d", b.cfg.loadTime.String()); err != nil {
		b.res.fail(name, err)
		return
	}
	cpu1, cpuErr1 := b.gatewayCPU(s)
	b.res.add(name, "conn_rate", cr.PerSecond)
	msg := fmt.Sprintf("%s: connrate: %.0f/s (%d errors)", name, cr.PerSecond, cr.Errors)
	if s.gateway != nil && cpuErr == nil && cpuErr1 == nil && cr.Connections > 0 {
		used, k := cpu1.since(cpu0), float64(cr.Connections)/1000
		b.res.add(name, "cpu_per_kconn", used.total()/k)
		b.res.add(name, "sys_per_kconn", used.system/k)
		msg += fmt.Sprintf(", %.3f CPU s per 1,000 (%.3f system)", used.total()/k, used.system/k)
	}
	b.logf("%s", msg)
}

// measureUDPRoundTrips runs the UDP request/response test and the
// gateway's CPU microseconds per round trip during it: at a fixed rate
// of round trips the CPU each one costs is what the rate and the median
// are made of, and it is steadier than either on a shared machine.
func (b *bench) measureUDPRoundTrips(ctx context.Context, name string, s *session) {
	var ur udpResult
	cpu0, cpuErr := b.gatewayCPU(s)
	if err := b.clientJSON(ctx, s.netns, &ur, "udprr", "-addr", serverAddrPort(udpEchoPort), "-c", "8", "-d", b.cfg.loadTime.String()); err != nil {
		b.res.fail(name, err)
		return
	}
	cpu1, cpuErr1 := b.gatewayCPU(s)
	b.res.add(name, "udp_rate", ur.PerSecond)
	b.res.add(name, "udp_median_us", ur.MedianUS)
	msg := fmt.Sprintf("%s: udp: %.0f/s, median %.0f µs (%d lost)", name, ur.PerSecond, ur.MedianUS, ur.Lost)
	if s.gateway != nil && cpuErr == nil && cpuErr1 == nil && ur.RoundTrips > 0 {
		used, rts := cpu1.since(cpu0), float64(ur.RoundTrips)/1e6
		b.res.add(name, "udp_cpu_us_per_rt", used.total()/rts)
		b.res.add(name, "udp_sys_us_per_rt", used.system/rts)
		msg += fmt.Sprintf(", %.2f CPU µs per round trip (%.2f system)", used.total()/rts, used.system/rts)
	}
	b.logf("%s", msg)
}

func (b *bench) clientJSON(ctx context.Context, netns string, v any, args ...string) error {
	out, err := b.runClient(ctx, netns, args...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("%s printed %q: %w", args[0], out, err)
	}
	return nil
}

// measureIdle opens the idle connections from the client namespace and
// reads the gateway's RSS while they are held.
func (b *bench) measureIdle(ctx context.Context, name string, s *session) error {
	before, err := memoryBytes(s.gateway.pid(), "VmRSS")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, idleOpenTime+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "--net="+s.netns, "--", b.self, "idle",
		"-addr", serverAddrPort(holdPort), "-n", fmt.Sprint(b.cfg.idleConns), "-d", idleOpenTime.String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Wait()
	defer stdin.Close()
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("idle client: %w", err)
	}
	var res idleResult
	if err := json.Unmarshal(line, &res); err != nil {
		return fmt.Errorf("idle client printed %q: %w", line, err)
	}
	time.Sleep(time.Second)
	burst, err := memoryBytes(s.gateway.pid(), "VmRSS")
	if err != nil {
		return err
	}
	// What an idle connection costs once it is idle: tungate parks a flow
	// after 1 to 2 s without data and returns freed memory once the flow
	// count has not grown for 5 s. Every path gets the same wait.
	time.Sleep(idleSettleTime)
	held, err := memoryBytes(s.gateway.pid(), "VmRSS")
	if err != nil {
		return err
	}
	b.logf("%s: %d idle connections open (%d failed) in %.1fs; RSS %.1f -> %.1f MiB 1 s later, %.1f MiB %v after that", name, res.Open, res.Failed, res.Seconds, before/mib, burst/mib, held/mib, idleSettleTime)
	if res.Open == 0 {
		return fmt.Errorf("no idle connection opened")
	}
	if res.Failed > 0 {
		b.res.fail(name, fmt.Errorf("idle connections: %d of %d failed to open", res.Failed, b.cfg.idleConns))
	}
	b.res.add(name, "idle_open", float64(res.Open))
	b.res.add(name, "idle_rss", held/mib)
	b.res.add(name, "idle_bytes_per_conn", (held-before)/float64(res.Open))
	return nil
}

func serverAddrPort(port int) string { return fmt.Sprintf("%s:%d", serverIP, port) }
