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

// iperfResult is what one iperf3 run moved.
type iperfResult struct {
	bitsPerSecond float64
	bytes         float64
}

// iperfReport is the part of iperf3's -J output the benchmark reads.
type iperfReport struct {
	Error string `json:"error"`
	End   struct {
		SumReceived struct {
			Bytes         float64 `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
}

// iperf runs one iperf3 client in netns against the server's iperf3.
// reverse measures download (server -> client). A busy server (still
// finishing the previous test) is retried.
func (b *bench) iperf(ctx context.Context, netns string, reverse bool, streams int) (iperfResult, error) {
	secs := fmt.Sprintf("%.0f", b.cfg.iperfTime.Seconds())
	args := []string{"--net=" + netns, "--", "iperf3", "-J", "-c", serverIP, "-p", fmt.Sprint(iperfPort),
		"-t", secs, "-P", fmt.Sprint(streams), "--connect-timeout", "5000"}
	if reverse {
		args = append(args, "-R")
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var res iperfResult
		res, err = runIperf(ctx, b.cfg.iperfTime+20*time.Second, args)
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
	var rep iperfReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return iperfResult{}, fmt.Errorf("iperf3: %v (%v): %s", runErr, err, strings.TrimSpace(stderr.String()))
	}
	if rep.Error != "" || runErr != nil {
		return iperfResult{}, fmt.Errorf("iperf3: %v: %s", runErr, rep.Error)
	}
	s := rep.End.SumReceived
	if s.Bytes <= 0 {
		return iperfResult{}, fmt.Errorf("iperf3 moved no bytes")
	}
	return iperfResult{bitsPerSecond: s.BitsPerSecond, bytes: s.Bytes}, nil
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
