package stack

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip/link/sniffer"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// DefaultSnapLen is the default of CaptureOptions.SnapLen: as much of a
// packet as tcpdump keeps by default.
const DefaultSnapLen = 262144

// CaptureOptions configures a packet capture.
type CaptureOptions struct {
	// Out receives the pcap file (LINKTYPE_RAW: IPv4 and IPv6 packets
	// without a link header, both directions). The capture closes it when
	// MaxSize is reached or a write fails, and on Close.
	Out io.WriteCloser
	// Name names Out in the log line that says the capture stopped.
	Name string
	// SnapLen is the most bytes kept of each packet; zero means
	// DefaultSnapLen.
	SnapLen uint32
	// MaxSize bounds the file, in bytes; once the next packet would pass
	// it the file is closed and the capture stops. Zero means no bound.
	MaxSize int64
	// Logger hears once that the capture stopped; nil discards.
	Logger *slog.Logger
}

// Capture writes every packet that crosses a link endpoint to a pcap file
// that tcpdump -r and Wireshark read. The packets are gVisor's sniffer's:
// TCP super-packets (segmentation offload) appear as one large packet, as
// on a capture of a real interface with offload.
type Capture struct {
	name    string
	log     *slog.Logger
	max     int64
	stopped atomic.Bool

	mu      sync.Mutex // orders packets: the sniffer does not
	out     io.WriteCloser
	written int64
}

// NewCapture wraps link so that every packet it receives or sends is also
// written to opts.Out. The returned endpoint replaces link in Options;
// Close the Capture after the Stack.
func NewCapture(link gvstack.LinkEndpoint, opts CaptureOptions) (gvstack.LinkEndpoint, *Capture, error) {
	if opts.SnapLen == 0 {
		opts.SnapLen = DefaultSnapLen
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The sniffer would also format every packet for gVisor's logger
	// (which tungate silences); the switch is gVisor's, process-wide.
	sniffer.LogPackets.Store(0)
	c := &Capture{name: opts.Name, log: log, max: opts.MaxSize, out: opts.Out}
	ep, err := sniffer.NewWithWriter(link, c, opts.SnapLen)
	if err != nil {
		return nil, nil, fmt.Errorf("pcap %s: write header: %w", opts.Name, err)
	}
	return &captureEndpoint{Endpoint: ep, child: link}, c, nil
}

// Write implements io.Writer for the sniffer, which hands it one whole
// pcap record (or the file header) per call, from any goroutine. It never
// fails: the sniffer panics on an error, and a capture that cannot go on
// just stops.
func (c *Capture) Write(b []byte) (int, error) {
	if c.stopped.Load() {
		return len(b), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out == nil {
		return len(b), nil
	}
	if c.max > 0 && c.written+int64(len(b)) > c.max {
		c.stopLocked("pcap: size limit reached; capture stopped", "max_bytes", c.max)
		return len(b), nil
	}
	n, err := c.out.Write(b)
	c.written += int64(n)
	if err != nil {
		c.stopLocked("pcap: write failed; capture stopped", "err", err)
	}
	return len(b), nil
}

// Written returns the bytes written to the file so far.
func (c *Capture) Written() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.written
}

// Stopped reports whether the capture has stopped (size limit, a failed
// write, or Close).
func (c *Capture) Stopped() bool { return c.stopped.Load() }

func (c *Capture) stopLocked(msg string, args ...any) {
	c.stopped.Store(true)
	err := c.out.Close()
	c.out = nil
	if err != nil {
		args = append(args, "close_err", err)
	}
	c.log.Warn(msg, append(args, "file", c.name, "bytes", c.written)...)
}

// Close closes the file, if the capture has not stopped already. It is
// idempotent.
func (c *Capture) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out == nil {
		return nil
	}
	c.stopped.Store(true)
	err := c.out.Close()
	c.out = nil
	if err != nil {
		return fmt.Errorf("pcap %s: close: %w", c.name, err)
	}
	return nil
}
