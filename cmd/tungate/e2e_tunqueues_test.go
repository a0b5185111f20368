package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// TestTUNQueues runs tungate with a two-queue device and moves four iperf3
// streams each way through it: the device must be multi-queue with two
// queues, and every stream must carry data (a flow the queues lost would
// stall).
func TestTUNQueues(t *testing.T) {
	t.Parallel()
	netlab.RequireBinary(t, "iperf3")
	if kernelMode() {
		t.Skip("skipping: --tun-queues is tungate's; the kernel gateway has no TUN device")
	}
	tp := newTopo(t, "--tun-queues", "2", "--cpus", "2")
	link := tp.app.MustRun(t, "ip", "-d", "link", "show", "dev", tp.dev)
	if !strings.Contains(link, "multi_queue numqueues 2 ") {
		t.Fatalf("device %s is not multi-queue with 2 queues:\n%s", tp.dev, link)
	}
	const port = 7011
	addr := tp.srvAddr(false).String()
	tp.srv.Start(t, "iperf3", "-s", "-B", addr, "-p", fmt.Sprint(port))
	time.Sleep(300 * time.Millisecond) // let the server bind
	for _, dir := range []string{"up", "down"} {
		args := []string{"-c", addr, "-p", fmt.Sprint(port), "-P", "4", "-t", "2", "-J"}
		if dir == "down" {
			args = append(args, "-R")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := tp.app.Exec(ctx, "iperf3", args...).Output()
		cancel()
		if err != nil {
			t.Fatalf("iperf3 %s: %v\n%s", dir, err, out)
		}
		var res struct {
			End struct {
				Streams []struct {
					Receiver struct {
						Bytes int64 `json:"bytes"`
					} `json:"receiver"`
				} `json:"streams"`
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("iperf3 %s: %v\n%s", dir, err, out)
		}
		if len(res.End.Streams) != 4 {
			t.Fatalf("iperf3 %s: %d streams in the result, want 4:\n%s", dir, len(res.End.Streams), out)
		}
		for i, s := range res.End.Streams {
			if s.Receiver.Bytes < 1<<20 {
				t.Errorf("iperf3 %s: stream %d carried %d bytes, want at least 1 MiB", dir, i, s.Receiver.Bytes)
			}
		}
		t.Logf("4 streams %s through 2 queues: %.2f Gbit/s", dir, res.End.SumReceived.BitsPerSecond/1e9)
	}
}

// TestRunTUNQueues checks that `tungate run --tun-queues 3` gives the
// command's namespace a device with three queues: the setup process opens
// them and hands every fd to the gateway (TestTUNQueues moves traffic).
func TestRunTUNQueues(t *testing.T) {
	t.Parallel()
	netlab.RequireRoot(t)
	r := tungateRun(t, nil, "--tun-queues", "3", "--", "ip", "-d", "link", "show", "dev", "tun0")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "multi_queue numqueues 3 ") {
		t.Fatalf("tun0 is not multi-queue with 3 queues:\n%s", r.stdout)
	}
}
