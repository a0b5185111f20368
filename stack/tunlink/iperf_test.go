package tunlink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
)

// relayTo returns a stack-side handler that connects each flow to
// 127.0.0.1:port on the host and copies both ways, like tungate does.
func relayTo(port int) func(net.Conn, uint16) {
	return func(app net.Conn, _ uint16) {
		up, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return
		}
		defer up.Close()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = io.Copy(up, app)
			_ = up.(*net.TCPConn).CloseWrite()
		}()
		_, _ = io.Copy(app, up)
		_ = app.(*gonet.TCPConn).CloseWrite()
		wg.Wait()
	}
}

// TestTUNIperf3 measures an iperf3 client in the namespace against an
// iperf3 server on the host's loopback, through the TUN, the stack and a
// relay: the whole tungate data path in miniature.
func TestTUNIperf3(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping throughput measurement in -short mode")
	}
	iperf, err := exec.LookPath("iperf3")
	if err != nil {
		t.Skip("skipping: iperf3 is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	server := exec.CommandContext(ctx, iperf, "-s", "-B", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = server.Wait()
	})
	time.Sleep(200 * time.Millisecond) // let the server bind

	for _, vnet := range []bool{false, true} {
		t.Run(fmt.Sprintf("vnet=%v", vnet), func(t *testing.T) {
			ts := newTunStack(t, vnet, relayTo(port))
			for _, reverse := range []bool{false, true} {
				args := []string{"netns", "exec", ts.ns, iperf, "-c", stackAddr4, "-p", strconv.Itoa(port), "-t", "3", "-J"}
				dir := "app->stack"
				if reverse {
					args = append(args, "-R")
					dir = "stack->app"
				}
				out, err := exec.Command("ip", args...).Output()
				var exitErr *exec.ExitError
				if errors.As(err, &exitErr) {
					t.Fatalf("iperf3 %s: %v\n%s\n%s", dir, err, out, exitErr.Stderr)
				}
				if err != nil {
					t.Fatal(err)
				}
				var res struct {
					End struct {
						SumReceived struct {
							BitsPerSecond float64 `json:"bits_per_second"`
						} `json:"sum_received"`
					} `json:"end"`
				}
				if err := json.Unmarshal(out, &res); err != nil || res.End.SumReceived.BitsPerSecond == 0 {
					t.Fatalf("iperf3 %s: no result (%v):\n%s", dir, err, out)
				}
				t.Logf("iperf3 vnet=%v %s: %.2f Gbit/s", vnet, dir, res.End.SumReceived.BitsPerSecond/1e9)
			}
		})
	}
}
