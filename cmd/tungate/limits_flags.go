package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/forwarder"
	"github.com/tungate/tungate/forwarder/admission"
	"github.com/tungate/tungate/stack"
)

// limitConfig is what the limit flags say: the caps on flows and dials in
// flight (package admission) and the timeouts that end stuck flows.
type limitConfig struct {
	maxFlows          int
	maxUDPSessions    int
	udpSessionsGiven  bool // --max-udp-sessions was on the command line
	maxPending        int
	perDst            int // 0: maxPending/8
	perSrc            int // 0: maxPending/4
	fdReserve         int
	handshakeTimeout  time.Duration
	halfClosedTimeout time.Duration
	icmpRate          int
}

// maxFlowsCap bounds --max-flows and --max-pending: far above what one
// process's descriptors allow.
const maxFlowsCap = 1 << 22

// addLimitFlags registers the limit flags.
func addLimitFlags(fs *pflag.FlagSet, c *limitConfig) {
	c.maxFlows = admission.DefaultMaxFlows
	fs.Var(intValue{&c.maxFlows, 1, maxFlowsCap}, "max-flows", "open TCP connections and UDP sessions together; at the cap the least recently used UDP session idle for 1 s makes room, else a new one is refused at once (reset, ICMP port unreachable)")
	c.maxUDPSessions = admission.DefaultMaxUDPSessions
	fs.Var(givenInt{intValue{&c.maxUDPSessions, 1, maxFlowsCap}, &c.udpSessionsGiven}, "max-udp-sessions", "UDP sessions (app source ports) among --max-flows (the default is cut to a lower --max-flows; a larger value given is an error); at the cap the least recently used one idle for 1 s makes room, else a new one gets ICMP port unreachable")
	c.maxPending = admission.DefaultMaxPending
	fs.Var(intValue{&c.maxPending, 1, maxFlowsCap}, "max-pending", "TCP connections being dialed or completing the app's handshake at once; new ones beyond it are refused with a reset")
	fs.Var(intValue{&c.perDst, 0, maxFlowsCap}, "max-pending-per-dst", "pending TCP dials to one /24 (IPv4) or /64 (IPv6); 0 means --max-pending/8")
	fs.Var(intValue{&c.perSrc, 0, maxFlowsCap}, "max-pending-per-src", "pending TCP dials from one app source address; 0 means --max-pending/4")
	c.fdReserve = admission.DefaultReserve
	fs.Var(intValue{&c.fdReserve, 1, 1 << 20}, "fd-reserve", "file descriptors kept free of flows (for DNS, echo, listeners): new flows are refused once fewer remain under the limit (ulimit -n)")
	c.handshakeTimeout = forwarder.DefaultHandshakeTimeout
	fs.Var(durationValue{&c.handshakeTimeout}, "app-handshake-timeout", "give up on an app's TCP handshake after this long once the upstream dial succeeded (frees its slot, closes the upstream connection)")
	c.halfClosedTimeout = forwarder.DefaultHalfClosedTimeout
	c.icmpRate = stack.DefaultICMPErrorRate
	fs.Var(intValue{&c.icmpRate, 1, 1 << 24}, "icmp-rate", "ICMP errors (port unreachable for refused UDP) sent to apps per second, in bursts of a tenth of it; refusals beyond it go untold")
	fs.Var(durationValue{&c.halfClosedTimeout}, "half-closed-timeout", "reset a TCP flow once one side has closed and nothing has moved for this long")
}

// validate refuses a --max-udp-sessions given above --max-flows (it would
// never bite); the default is cut to a lower --max-flows instead.
func (c *limitConfig) validate() error {
	if c.udpSessionsGiven && c.maxUDPSessions > c.maxFlows {
		return usageErrorf("--max-udp-sessions %d is above --max-flows %d: UDP sessions are among the flows; lower it or raise --max-flows", c.maxUDPSessions, c.maxFlows)
	}
	return nil
}

// givenInt is an intValue that records whether the flag was given.
type givenInt struct {
	intValue
	given *bool
}

func (v givenInt) Set(s string) error {
	if err := v.intValue.Set(s); err != nil {
		return err
	}
	*v.given = true
	return nil
}

// forwarderLimits turns the flags into the forwarder's limits, bounding
// the flows by what the file descriptor limit leaves room for (counted
// once, now, with what tungate holds open already). fdLimit is the
// limit, for the log line when it bites.
func (c *limitConfig) forwarderLimits(log *slog.Logger) (l admission.Limits, fdLimit int) {
	l = admission.Limits{
		MaxFlows:       c.maxFlows,
		MaxUDPSessions: c.maxUDPSessions,
		Reserve:        c.fdReserve,
		MaxPending:     c.maxPending,
		PendingPerDst:  c.perDst,
		PendingPerSrc:  c.perSrc,
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY || rl.Cur > maxFlowsCap {
		return l, 0
	}
	fdLimit = int(rl.Cur)
	open := openFDs()
	l.FDFlows = admission.FlowsForFDs(fdLimit, open, c.fdReserve)
	// Logged only for a --max-flows given above the default: with the
	// default, a modest ulimit -n bounding the flows is the normal case.
	if l.FDFlows < c.maxFlows && c.maxFlows > admission.DefaultMaxFlows {
		log.Info("the file descriptor limit bounds the flows below --max-flows; raise it (ulimit -n, or LimitNOFILE= in a systemd unit) for more",
			"nofile", fdLimit, "open", open, "fd_reserve", c.fdReserve, "flows", l.FDFlows, "max_flows", c.maxFlows)
	}
	return l, fdLimit
}

// openFDs counts the descriptors open now; on failure it guesses a few.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 16
	}
	return len(ents)
}

// tcpMaxInFlight is the stack's backstop on SYNs being handled: the
// pending dials and room for a burst being refused.
func (c *limitConfig) tcpMaxInFlight() int { return c.maxPending + 8192 }

// limitsSummary is the refusal counts for the stopped log line.
func limitsSummary(f *forwarder.Forwarder) string {
	return fmt.Sprintf("%v half_closed_resets:%d", f.Refused(), f.HalfClosedResets())
}

// addHostLoopbackFlag registers the gateway's --allow-host-loopback.
func addHostLoopbackFlag(fs *pflag.FlagSet, allow *bool) {
	fs.BoolVar(allow, "allow-host-loopback", false, "with --netns, let flows reach the host's loopback (127.0.0.0/8, ::1, 0.0.0.0, ::), which is refused otherwise")
}
