package main

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/stack"
)

// observeConfig is what the observability flags say: --metrics,
// --control, --flow-log, --pcap and its limits.
type observeConfig struct {
	metrics metricsAddr
	control string // "" = the default path, "none" = off
	flowLog string // "-" = stderr
	// flowLogQueue is how many finished flows' lines wait for the
	// --flow-log writer before lines are dropped.
	flowLogQueue int
	pcap         string
	pcapSnapLen  int
	pcapMaxSize  sizeValue
}

// controlNone turns the control socket off.
const controlNone = "none"

// Defaults and bounds of the pcap and flow log flags.
const (
	defaultPcapMaxSize = 100_000_000 // 100 MB
	maxSnapLen         = stack.DefaultSnapLen
	// maxFlowLogQueue bounds --flow-log-queue: a queued line holds a few
	// hundred bytes.
	maxFlowLogQueue = 1 << 20
)

// addObserveFlags registers the observability flags, shared by the
// gateway and `run`.
func addObserveFlags(fs *pflag.FlagSet, c *observeConfig) {
	fs.Var(&c.metrics, "metrics", "serve HTTP on `ADDR` (a port alone means 127.0.0.1:PORT): GET /metrics (Prometheus) and GET /flows (JSON)")
	fs.Var(pathValue{&c.control, "a PATH or none (leave the flag out for the default)"}, "control", "control unix socket `PATH` serving the same API, or none (default /run/tungate/DEVICE.sock as root, run-PID.sock under tungate run; $XDG_RUNTIME_DIR/tungate/PID.sock otherwise)")
	fs.Var(pathValue{&c.flowLog, "a FILE, or - for stderr"}, "flow-log", "append one JSON line per finished flow to `FILE` (- for stderr)")
	c.flowLogQueue = flows.DefaultLogBuffer
	fs.Var(intValue{&c.flowLogQueue, 1, maxFlowLogQueue}, "flow-log-queue", "hold at most `N` --flow-log lines for a slow writer; more are dropped and counted")
	fs.Var(pathValue{&c.pcap, "a FILE"}, "pcap", "write every packet that crosses the device, both directions, to pcap `FILE`")
	c.pcapSnapLen = stack.DefaultSnapLen
	fs.Var(intValue{&c.pcapSnapLen, 64, maxSnapLen}, "pcap-snaplen", "keep at most this many bytes of each packet in --pcap")
	c.pcapMaxSize = sizeValue(defaultPcapMaxSize)
	fs.Var(&c.pcapMaxSize, "pcap-max-size", "close the --pcap file when it would grow past `SIZE` (100MB, 1GiB, bytes; 0 for no limit)")
	fs.Lookup("pcap-max-size").DefValue = "100MB"
}

// metricsAddr is the value of --metrics: ADDR:PORT, [ADDR]:PORT, :PORT
// (every address) or PORT (127.0.0.1).
type metricsAddr struct{ addr netip.AddrPort }

func (m *metricsAddr) String() string {
	if !m.addr.IsValid() {
		return ""
	}
	return m.addr.String()
}

func (m *metricsAddr) Set(s string) error {
	const want = "want PORT, ADDR:PORT or [ADDR]:PORT, such as 9467 or 127.0.0.1:9467"
	if port, err := strconv.ParseUint(s, 10, 16); err == nil {
		if port == 0 {
			return fmt.Errorf("%s, with a port from 1 to 65535", want)
		}
		m.addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port))
		return nil
	}
	if rest, ok := strings.CutPrefix(s, ":"); ok {
		s = "[::]:" + rest
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		return fmt.Errorf("%s", want)
	}
	m.addr = ap
	return nil
}

func (m *metricsAddr) Type() string { return "ADDR" }

// sizeValue is a size in bytes: a whole number with an optional unit, B,
// kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024).
type sizeValue int64

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// parseSize parses a sizeValue's text.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	}
	mult, ok := sizeUnits[unit]
	v, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || num == "" || v < 0 || v*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("want a size such as 100MB, 1GiB or 5000000 (bytes)")
	}
	return int64(v * mult), nil
}

func (v *sizeValue) String() string { return strconv.FormatInt(int64(*v), 10) }

func (v *sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*v = sizeValue(n)
	return nil
}

func (v *sizeValue) Type() string { return "SIZE" }

// pathValue is a file path that may not be empty: an empty --control,
// --flow-log or --pcap is more likely a shell variable that was not set
// than a request for the default, so it is a usage error.
type pathValue struct {
	p    *string
	want string // what to give instead, for the error
}

func (v pathValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v pathValue) Set(s string) error {
	if s == "" {
		return fmt.Errorf("empty path: want %s", v.want)
	}
	*v.p = s
	return nil
}

func (v pathValue) Type() string { return "PATH" }
