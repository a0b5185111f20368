package forwarder_test

import (
	"context"
	"io"
	"net"
	"runtime/metrics"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/tungate/tungate/forwarder/proxy"
)

// Sizes of the connection-rate benchmark's exchange, as in tungate-bench's
// connrate: the app sends a request, the server answers and closes.
const (
	connRequest  = 32
	connResponse = 64
)

// BenchmarkTCPConnection opens one short connection per op through the
// forwarder, dialed with the real direct dialer to a loopback server:
// connect, request, response, the server's close, the app's close. Its
// allocations per op are the whole path's (both stacks, the dial, the
// relay), deterministic where the CPU time of tungate-bench's connrate is
// noisy on a loaded machine.
func BenchmarkTCPConnection(b *testing.B) {
	resp := make([]byte, connResponse)
	addr := listen(b, func(c *net.TCPConn) {
		req := make([]byte, connRequest)
		if _, err := io.ReadFull(c, req); err == nil {
			c.Write(resp)
		}
	})
	direct := &proxy.Direct{Timeout: 5 * time.Second}
	app := newPair(b, dialerFunc(func(ctx context.Context, network, _ string) (net.Conn, error) {
		return direct.DialContext(ctx, network, addr)
	}))
	// The app stack closes first after the server: its TIME_WAIT must not
	// run it out of ports in a long run.
	tw := tcpip.TCPTimeWaitTimeoutOption(time.Millisecond)
	if err := app.SetTransportProtocolOption(tcp.ProtocolNumber, &tw); err != nil {
		b.Fatal(err)
	}
	req, got := make([]byte, connRequest), make([]byte, connResponse+1)
	oneConnection(b, app, req, got) // warm pools and kept goroutines
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, g0 := processCPU(b), goroutinesCreated()
	for range b.N {
		oneConnection(b, app, req, got)
	}
	b.StopTimer()
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(goroutinesCreated()-g0)/float64(b.N), "goroutines/op")
}

// goroutinesCreated is how many goroutines this process has started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// processCPU is the user and system time this process has used so far:
// on a loaded machine, a steadier figure than the time an op takes.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func oneConnection(b *testing.B, app *gvstack.Stack, req, resp []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := gonet.DialContextTCP(ctx, app, to(10, 9, 9, 9, 80), ipv4.ProtocolNumber)
	if err != nil {
		b.Fatalf("dial through gateway: %v", err)
	}
	defer c.Close()
	if _, err := c.Write(req); err != nil {
		b.Fatalf("write request: %v", err)
	}
	n, err := io.ReadFull(c, resp)
	if err != io.ErrUnexpectedEOF || n != connResponse {
		b.Fatalf("read response: %d bytes, %v; want %d then EOF", n, err, connResponse)
	}
}
