package tunlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

const (
	sinkPort   = 1 // reads everything, answers with byte count and CRC
	sourcePort = 2 // reads a length, sends that many pattern bytes
	refusePort = 3 // the forwarder answers with a reset
	tunName    = "tl0"
	tunAddr4   = "10.77.0.1" // the netns side of the TUN
	stackAddr4 = "10.77.0.2" // any address routed into the TUN reaches the stack
	tunAddr6   = "fd77::1"
	stackAddr6 = "fd77::2"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// pattern is the data every transfer repeats: random, so a misplaced
// segment changes the CRC.
var pattern = func() []byte {
	b := make([]byte, 1<<20)
	r := rand.NewChaCha8([32]byte{7})
	_, _ = r.Read(b)
	return b
}()

func patternCRC(n int64) uint32 {
	var c uint32
	for n > 0 {
		k := min(n, int64(len(pattern)))
		c = crc32.Update(c, crcTable, pattern[:k])
		n -= k
	}
	return c
}

// tunStack is a gVisor stack on a tunlink Endpoint on a real TUN device in
// its own namespace, terminating every TCP connection routed into the TUN.
type tunStack struct {
	ns string
	ep *Endpoint
	s  *stack.Stack
	// relay, if set, handles connections to other ports.
	relay func(net.Conn, uint16)
}

func newTunStack(t *testing.T, vnet bool, relay func(net.Conn, uint16)) *tunStack {
	t.Helper()
	return newTunStackQueues(t, vnet, 1, relay)
}

// newTunStackQueues is newTunStack on a device with the given number of
// queues (more than one: multi-queue).
func newTunStackQueues(t *testing.T, vnet bool, queues int, relay func(net.Conn, uint16)) *tunStack {
	t.Helper()
	requireNetAdmin(t)
	ns := newNetns(t)
	var fds []int
	if queues > 1 {
		fds = openTUNQueues(t, ns, tunName, vnet, queues)
	} else {
		fds = []int{openTUN(t, ns, tunName, vnet)}
	}
	run(t, "ip", "-n", ns, "link", "set", tunName, "mtu", "1500", "up")
	run(t, "ip", "-n", ns, "addr", "add", tunAddr4+"/24", "dev", tunName)
	run(t, "ip", "-n", ns, "addr", "add", tunAddr6+"/64", "dev", tunName, "nodad")

	ep, err := New(Options{FD: fds[0], Queues: fds[1:], MTU: 1500, VnetHdr: vnet})
	if err != nil {
		t.Fatal(err)
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	ts := &tunStack{ns: ns, ep: ep, s: s, relay: relay}
	var handlers sync.WaitGroup
	t.Cleanup(func() {
		s.Close() // removes the NIC, which closes ep
		s.Wait()
		ep.Close()
		handlers.Wait()
	})
	for _, opt := range []tcpip.SettableTransportProtocolOption{
		&tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20},
		&tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20},
		func() *tcpip.TCPSACKEnabled { v := tcpip.TCPSACKEnabled(true); return &v }(),
		func() *tcpip.TCPModerateReceiveBufferOption {
			v := tcpip.TCPModerateReceiveBufferOption(true)
			return &v
		}(),
	} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); err != nil {
			t.Fatalf("set %T: %v", opt, err)
		}
	}
	fwd := tcp.NewForwarder(s, 0, 64, func(r *tcp.ForwarderRequest) {
		port := r.ID().LocalPort
		if port == refusePort {
			r.Complete(true)
			return
		}
		var wq waiter.Queue
		tep, err := r.CreateEndpoint(&wq)
		if err != nil {
			r.Complete(true)
			return
		}
		r.Complete(false)
		conn := gonet.NewTCPConn(&wq, tep)
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			defer conn.Close()
			ts.serve(conn, port)
		}()
	})
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, fwd.HandlePacket)
	// Only now attach the link: its reader delivers at once, and the stack
	// does not synchronise handler installation with delivery.
	if err := s.CreateNIC(1, ep); err != nil {
		t.Fatalf("CreateNIC: %v", err)
	}
	if err := s.SetPromiscuousMode(1, true); err != nil {
		t.Fatalf("promiscuous: %v", err)
	}
	if err := s.SetSpoofing(1, true); err != nil {
		t.Fatalf("spoofing: %v", err)
	}
	s.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: 1},
		{Destination: header.IPv6EmptySubnet, NIC: 1},
	})
	return ts
}

func (ts *tunStack) serve(conn *gonet.TCPConn, port uint16) {
	switch port {
	case sinkPort:
		h := crc32.New(crcTable)
		n, err := io.Copy(h, conn)
		if err != nil {
			return
		}
		var reply [12]byte
		binary.BigEndian.PutUint64(reply[:], uint64(n))
		binary.BigEndian.PutUint32(reply[8:], h.Sum32())
		_, _ = conn.Write(reply[:])
	case sourcePort:
		var req [8]byte
		if _, err := io.ReadFull(conn, req[:]); err != nil {
			return
		}
		for n := int64(binary.BigEndian.Uint64(req[:])); n > 0; {
			k := min(n, int64(len(pattern)))
			if _, err := conn.Write(pattern[:k]); err != nil {
				return
			}
			n -= k
		}
		_ = conn.CloseWrite()
		_, _ = io.Copy(io.Discard, conn)
	default:
		if ts.relay != nil {
			ts.relay(conn, port)
		}
	}
}

// dial connects from inside the namespace to addr, through the TUN.
func (ts *tunStack) dial(addr string) (*net.TCPConn, error) {
	var c net.Conn
	err := inNetns(ts.ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// upload sends n pattern bytes into the stack's sink and checks what it
// counted. It returns the throughput in Gbit/s.
func (ts *tunStack) upload(host string, n int64) (float64, error) {
	conn, err := ts.dial(net.JoinHostPort(host, fmt.Sprint(sinkPort)))
	if err != nil {
		return 0, fmt.Errorf("dial sink: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
	start := time.Now()
	for left := n; left > 0; {
		k := min(left, int64(len(pattern)))
		if _, err := conn.Write(pattern[:k]); err != nil {
			return 0, fmt.Errorf("app -> stack: %w", err)
		}
		left -= k
	}
	if err := conn.CloseWrite(); err != nil {
		return 0, err
	}
	var reply [12]byte
	if _, err := io.ReadFull(conn, reply[:]); err != nil {
		return 0, fmt.Errorf("read sink's count: %w", err)
	}
	elapsed := time.Since(start)
	gotN, gotCRC := int64(binary.BigEndian.Uint64(reply[:])), binary.BigEndian.Uint32(reply[8:])
	if gotN != n || gotCRC != patternCRC(n) {
		return 0, fmt.Errorf("sink got %d bytes crc %08x, want %d bytes crc %08x", gotN, gotCRC, n, patternCRC(n))
	}
	return gbps(n, elapsed), nil
}

// download asks the stack's source for n bytes and checks them.
func (ts *tunStack) download(host string, n int64) (float64, error) {
	conn, err := ts.dial(net.JoinHostPort(host, fmt.Sprint(sourcePort)))
	if err != nil {
		return 0, fmt.Errorf("dial source: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
	want := patternCRC(n)
	start := time.Now()
	var req [8]byte
	binary.BigEndian.PutUint64(req[:], uint64(n))
	if _, err := conn.Write(req[:]); err != nil {
		return 0, err
	}
	h := crc32.New(crcTable)
	got, err := io.Copy(h, conn)
	if err != nil {
		return 0, fmt.Errorf("stack -> app: %w", err)
	}
	elapsed := time.Since(start)
	if got != n || h.Sum32() != want {
		return 0, fmt.Errorf("app got %d bytes crc %08x, want %d bytes crc %08x", got, h.Sum32(), n, want)
	}
	return gbps(n, elapsed), nil
}

func gbps(n int64, d time.Duration) float64 { return float64(n) * 8 / d.Seconds() / 1e9 }

func TestTUNTransfer(t *testing.T) {
	const size = 200 << 20
	for _, vnet := range []bool{false, true} {
		t.Run(fmt.Sprintf("vnet=%v", vnet), func(t *testing.T) {
			ts := newTunStack(t, vnet, nil)
			for _, host := range []string{stackAddr4, stackAddr6} {
				up, err := ts.upload(host, size)
				if err != nil {
					var sb strings.Builder
					st := ts.s.Stats()
					dumpStats(reflect.ValueOf(&st), "", &sb)
					t.Fatalf("upload to %s: %v (stats %+v) %s", host, err, ts.ep.Stats(), sb.String())
				}
				down, err := ts.download(host, size)
				if err != nil {
					var sb strings.Builder
					st := ts.s.Stats()
					dumpStats(reflect.ValueOf(&st), "", &sb)
					t.Fatalf("download from %s: %v (stats %+v) %s", host, err, ts.ep.Stats(), sb.String())
				}
				t.Logf("vnet=%v %s: app->stack %.2f Gbit/s, stack->app %.2f Gbit/s (200 MiB each, CRC ok)", vnet, host, up, down)
			}
			st := ts.ep.Stats()
			t.Logf("stats: %+v", st)
			if st.RxShort+st.RxBadVersion+st.RxTruncated+st.RxBadVnetHdr != 0 {
				t.Errorf("the kernel's packets were dropped as malformed: %+v", st)
			}
			if vnet && st.RxPackets*1500 > st.RxBytes*2 {
				t.Errorf("no TCP super-packets read with a virtio-net header: %d packets, %d bytes", st.RxPackets, st.RxBytes)
			}
		})
	}
}

// TestTUNResetFromStack checks a packet the stack sends without GSO options
// (a reset for a refused connection) gets a correct checksum from the kernel:
// the app sees "connection refused" at once, not a timeout.
func TestTUNResetFromStack(t *testing.T) {
	for _, vnet := range []bool{false, true} {
		t.Run(fmt.Sprintf("vnet=%v", vnet), func(t *testing.T) {
			ts := newTunStack(t, vnet, nil)
			for _, host := range []string{stackAddr4, stackAddr6} {
				_, err := ts.dial(net.JoinHostPort(host, fmt.Sprint(refusePort)))
				if !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatalf("dial %s:%d: %v, want connection refused", host, refusePort, err)
				}
			}
		})
	}
}
