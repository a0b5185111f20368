package main

import (
	"context"
	"fmt"
	"math"
	"time"
)

// UDP bulk: iperf3 -u with datagrams that fit MTU 1500, as QUIC sends them.
const (
	udpBulkBytes = 1400
	// udpTrialTime is the length of every UDP bulk run: the search needs
	// several per path, and a second already holds ~10^5 datagrams.
	udpTrialTime = time.Second
	// maxCapacityLoss is the loss, in percent, under which an offered rate
	// counts as carried.
	maxCapacityLoss = 1.0
	// udpSocketBuffer is iperf3's -w for UDP, the send and receive buffer
	// of its sockets at both ends. With the default ~200 KB a receiver that
	// is descheduled for a few milliseconds (on a shared 2-core machine)
	// overflows its own buffer, even on the kernel path, and the loss would
	// measure the load on the machine rather than the path; QUIC stacks ask
	// for several MB as well. The kernel caps it at net.core.rmem_max and
	// wmem_max (4 MiB by default, per namespace).
	udpSocketBuffer = "4M"
	// minTrialRate is the lowest offered rate the capacity search tries.
	minTrialRate = 1e6
	// searchResolution ends the capacity search once the lowest failed
	// rate is within this factor of the highest carried one.
	searchResolution = 1.1
)

// udpTrial is one UDP bulk run at one offered rate, in bits per second.
type udpTrial struct {
	sent     float64 // what left the sender
	received float64 // what arrived
	lost     float64 // percent of the datagrams sent
}

// carried reports whether the path carried the trial's rate: under
// maxCapacityLoss lost and something arrived.
func (t udpTrial) carried() bool { return t.lost < maxCapacityLoss && t.received > 0 }

// searchCapacity finds the highest offered rate that arrives with under
// 1% loss, given the unlimited run (-b 0) and at most steps more trials.
// It returns the arrival rate of the best carried trial, 0 if none was.
//
// The method: if the unlimited run itself lost under 1%, the sender is the
// limit and its arrival rate is the capacity. Otherwise the capacity lies
// between 0 and the unlimited sending rate; the first trial offers 95% of
// what arrived under overload (close to the capacity when the path
// saturates, far below it when it collapses), and each later trial bisects
// the bracket geometrically (between the highest carried and the lowest
// failed rate), or quarters the rate while nothing has been carried yet.
// The search stops when the bracket is within 10% or after steps trials:
// geometric bisection narrows a 150x bracket (a collapse) to within 17% in
// the 5 trials after the first, and a saturating path converges sooner.
func searchCapacity(ctx context.Context, unlimited udpTrial, steps int, try func(ctx context.Context, rate float64) (udpTrial, error)) (float64, error) {
	if unlimited.carried() {
		return unlimited.received, nil
	}
	best := 0.0
	carriedRate, failedRate := 0.0, unlimited.sent // offered rates bracketing the capacity
	rate := 0.95 * unlimited.received
	for range steps {
		rate = max(rate, minTrialRate) // only while nothing was carried
		t, err := try(ctx, rate)
		if err != nil {
			return 0, err
		}
		if t.carried() {
			carriedRate, best = rate, max(best, t.received)
		} else {
			failedRate = rate
		}
		switch {
		case carriedRate == 0 && rate <= minTrialRate:
			return 0, nil // nothing carried even at the floor
		case carriedRate == 0:
			rate = failedRate / 4
		case failedRate < searchResolution*carriedRate:
			return best, nil
		default:
			rate = math.Sqrt(carriedRate * failedRate)
		}
	}
	return best, nil
}

// measureUDPBulk runs iperf3 UDP up and down with 1 and 4 streams: the
// goodput of an unlimited sender every round, and in the last round the
// capacity search starting from it.
func (b *bench) measureUDPBulk(ctx context.Context, name string, s *session, last bool) {
	if !b.hasPerf {
		return
	}
	for _, f := range flows() {
		if ctx.Err() != nil {
			return
		}
		id := f.id()
		try := func(ctx context.Context, rate float64) (udpTrial, error) {
			return b.udpTrial(ctx, s.netns, f.dir == "down", f.streams, rate)
		}
		unlimited, err := try(ctx, 0)
		if err != nil {
			b.res.fail(name, fmt.Errorf("udp %s: %w", id, err))
			continue
		}
		b.res.add(name, "udp_goodput_"+id, unlimited.received/1e9)
		msg := fmt.Sprintf("%s: udp %s -b 0: %.2f of %.2f Gbit/s arrive (%.1f%% lost)",
			name, id, unlimited.received/1e9, unlimited.sent/1e9, unlimited.lost)
		if last {
			capacity, err := searchCapacity(ctx, unlimited, b.cfg.udpSteps, try)
			if err != nil {
				b.res.fail(name, fmt.Errorf("udp capacity %s: %w", id, err))
			} else {
				b.res.add(name, "udp_capacity_"+id, capacity/1e9)
				msg += fmt.Sprintf("; capacity %.2f Gbit/s", capacity/1e9)
				if capacity > 0 {
					b.res.add(name, "udp_overload_"+id, unlimited.received/capacity)
				}
			}
		}
		b.logf("%s", msg)
	}
}

// udpTrial runs one UDP bulk iperf3 of udpTrialTime offering rate bits/s
// in total over all streams (0: as fast as the sender can).
func (b *bench) udpTrial(ctx context.Context, netns string, reverse bool, streams int, rate float64) (udpTrial, error) {
	// iperf3's -b is per stream.
	perStream := fmt.Sprintf("%.0f", rate/float64(streams))
	r, err := b.iperfRun(ctx, netns, udpTrialTime, reverse, streams, "-u", "-l", fmt.Sprint(udpBulkBytes), "-w", udpSocketBuffer, "-b", perStream)
	if err != nil {
		return udpTrial{}, err
	}
	return udpTrial{sent: r.sentPerSecond, received: r.bitsPerSecond, lost: r.lostPercent}, nil
}
