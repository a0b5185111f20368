package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// flow is one shape of iperf3 run: a direction and a number of streams.
type flow struct {
	dir     string // "up" (client -> server) or "down" (-R)
	streams int
}

// flows lists the shapes every throughput test runs, in report order.
func flows() []flow { return []flow{{"up", 1}, {"down", 1}, {"up", 4}, {"down", 4}} }

// id names the flow in metric ids: "up_p1".
func (f flow) id() string { return fmt.Sprintf("%s_p%d", f.dir, f.streams) }

// iperfResult is what one iperf3 run moved, as seen by the receiver, and
// what the sender sent.
type iperfResult struct {
	bitsPerSecond float64 // arrived at the receiver
	bytes         float64 // arrived at the receiver
	sentPerSecond float64 // left the sender
	lostPercent   float64 // UDP: datagrams sent but not received
}

// iperfReport is the part of iperf3's -J output the benchmark reads. For
// UDP, sum_received is the receiver's count (iperf3 exchanges results at
// the end), so lost datagrams are excluded from its rate.
type iperfReport struct {
	Error string `json:"error"`
	End   struct {
		SumSent struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         float64 `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
			LostPercent   float64 `json:"lost_percent"`
		} `json:"sum_received"`
	} `json:"end"`
}

// iperf runs one iperf3 TCP client in netns against the server's iperf3.
// reverse measures download (server -> client).
func (b *bench) iperf(ctx context.Context, netns string, reverse bool, streams int) (iperfResult, error) {
	return b.iperfRun(ctx, netns, b.cfg.iperfTime, reverse, streams)
}

// iperfRun runs one iperf3 client of length d with extra arguments (-u for
// UDP). A busy server (still finishing the previous test) is retried.
func (b *bench) iperfRun(ctx context.Context, netns string, d time.Duration, reverse bool, streams int, extra ...string) (iperfResult, error) {
	secs := fmt.Sprintf("%.0f", d.Seconds())
	args := []string{"--net=" + netns, "--", "iperf3", "-J", "-c", serverIP, "-p", fmt.Sprint(iperfPort),
		"-t", secs, "-P", fmt.Sprint(streams), "--connect-timeout", "5000"}
	if reverse {
		args = append(args, "-R")
	}
	args = append(args, extra...)
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var res iperfResult
		res, err = runIperf(ctx, d+20*time.Second, args)
		if err == nil || ctx.Err() != nil {
			return res, err
		}
		time.Sleep(time.Second)
	}
	return iperfResult{}, err
}

func runIperf(ctx context.Context, timeout time.Duration, args []string) (iperfResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	return parseIperf(stdout.Bytes(), runErr, strings.TrimSpace(stderr.String()))
}

// parseIperf reads iperf3's -J output; runErr and stderr are the run's
// exit status and error output, for the message when the run failed. A
// run that sent nothing is an error; one where nothing arrived is not
// (UDP under overload can lose everything).
func parseIperf(out []byte, runErr error, stderr string) (iperfResult, error) {
	var rep iperfReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return iperfResult{}, fmt.Errorf("iperf3: %v (%v): %s", runErr, err, stderr)
	}
	if rep.Error != "" || runErr != nil {
		return iperfResult{}, fmt.Errorf("iperf3: %v: %s", runErr, rep.Error)
	}
	s := rep.End.SumReceived
	if s.Bytes <= 0 && rep.End.SumSent.BitsPerSecond <= 0 {
		return iperfResult{}, fmt.Errorf("iperf3 moved no bytes")
	}
	return iperfResult{bitsPerSecond: s.BitsPerSecond, bytes: s.Bytes,
		sentPerSecond: rep.End.SumSent.BitsPerSecond, lostPercent: s.LostPercent}, nil
}

// waitListening waits until process pid has a TCP socket listening on
// port, read from the process's own network namespace view of /proc.
func waitListening(ctx context.Context, pid, port int) error {
	want := fmt.Sprintf(":%04X ", port)
	for {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
		if err == nil {
			for _, line := range strings.Split(string(raw), "\n") {
				f := strings.Fields(line)
				if len(f) > 3 && strings.HasSuffix(f[1]+" ", want) && f[3] == "0A" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nothing listens on port %d: %w", port, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
