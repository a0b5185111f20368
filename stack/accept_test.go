package stack

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"

	"github.com/tungate/tungate/stack/flow"
)

// acceptingHandler accepts every connection with a context that ends
// after timeout, and reports Accept's error.
type acceptingHandler struct {
	recordingHandler
	timeout time.Duration
	errs    chan error
}

func (h *acceptingHandler) HandleTCP(r flow.TCPRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	defer cancel()
	c, err := r.Accept(ctx)
	if c != nil {
		c.Close()
	}
	h.errs <- err
}

// TestAcceptAbandonsHandshake: the app's SYN is answered with a SYN-ACK
// that nobody acknowledges (a spoofed source); Accept must give up when
// its context ends, not after gVisor's SYN-ACK retransmissions (about
// two minutes), and reset the app.
func TestAcceptAbandonsHandshake(t *testing.T) {
	link := channel.New(64, 1500, "")
	h := &acceptingHandler{timeout: 200 * time.Millisecond, errs: make(chan error, 1)}
	s, err := New(Options{Link: link, Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	start := time.Now()
	inject(link, syn4(netip.MustParseAddrPort("198.18.0.50:40000"), netip.MustParseAddrPort("10.9.9.9:80")))
	select {
	case err := <-h.errs:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Accept: %v; want the context's deadline", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waiting 5 s after its context ended")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Accept gave up after %v; want soon after its 200 ms context", took)
	}
	var flags []header.TCPFlags
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		out := link.ReadContext(ctx)
		cancel()
		if out == nil {
			break
		}
		flags = append(flags, header.TCP(header.IPv4(out.ToView().AsSlice()).Payload()).Flags())
		out.DecRef()
	}
	if len(flags) == 0 || !flags[0].Contains(header.TCPFlagSyn|header.TCPFlagAck) || !flags[len(flags)-1].Contains(header.TCPFlagRst) {
		t.Fatalf("wrote %v; want a SYN-ACK and, once abandoned, a reset", flags)
	}
}
