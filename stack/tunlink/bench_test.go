package tunlink

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// drainPeer reads and discards everything the endpoint writes, until the
// test ends.
func drainPeer(t testing.TB, peer int) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1<<17)
		for {
			n, err := unix.Read(peer, buf)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n == 0 {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = unix.Shutdown(peer, unix.SHUT_RDWR)
		wg.Wait()
	})
}

// countingDispatcher counts packets and drops them, like a stack that is
// infinitely fast.
type countingDispatcher struct {
	n      atomic.Int64
	target int64
	done   chan struct{}
}

func (d *countingDispatcher) DeliverNetworkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {
	if d.n.Add(1) == d.target {
		d.done <- struct{}{}
	}
}

func (*countingDispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

type writeCase struct {
	name    string
	vnet    bool
	payload int
	gso     stack.GSO
}

var writeCases = []writeCase{
	{name: "plain/1460", payload: 1460},
	{name: "vnet/1460", vnet: true, payload: 1460},
	{name: "vnet/gso64k", vnet: true, payload: 65000,
		gso: stack.GSO{Type: stack.GSOTCPv4, NeedsCsum: true, CsumOffset: 16, MSS: 1460, L3HdrLen: 20}},
}

func setupWrite(t testing.TB, wc writeCase) (*Endpoint, stack.PacketBufferList) {
	ours, peer := socketPair(t)
	ep := newTestEndpoint(t, ours, wc.vnet)
	drainPeer(t, peer)
	pkt := outboundTCP(header.IPv4ProtocolNumber, make([]byte, wc.payload))
	pkt.GSOOptions = wc.gso
	var pkts stack.PacketBufferList
	pkts.PushBack(pkt)
	t.Cleanup(pkts.Reset)
	return ep, pkts
}

func BenchmarkWritePackets(b *testing.B) {
	for _, wc := range writeCases {
		b.Run(wc.name, func(b *testing.B) {
			ep, pkts := setupWrite(b, wc)
			b.SetBytes(int64(wc.payload))
			b.ReportAllocs()
			for b.Loop() {
				// A full socket (EAGAIN) is a drop, as on a real TUN.
				_, _ = ep.WritePackets(pkts)
			}
			b.ReportMetric(float64(ep.Stats().TxErrors), "drops")
		})
	}
}

func TestWriteDoesNotAllocate(t *testing.T) {
	for _, wc := range writeCases {
		t.Run(wc.name, func(t *testing.T) {
			ep, pkts := setupWrite(t, wc)
			allocs := testing.AllocsPerRun(1000, func() { _, _ = ep.WritePackets(pkts) })
			if allocs != 0 {
				t.Errorf("WritePackets: %v allocations per packet, want 0", allocs)
			}
		})
	}
}

// BenchmarkReadDispatch reads packets into the stack, and (udpfast/...)
// plain datagrams that a UDP handler takes past it: the per-packet cost
// upward, which must not allocate.
func BenchmarkReadDispatch(b *testing.B) {
	gso := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: vnetGSOTCPv4, gsoSize: 1448}
	valid := vnetHdr{flags: vnetFlagDataValid}
	for _, rc := range []struct {
		name string
		vnet bool
		hdr  vnetHdr
		size int
		fast bool // a UDP handler takes the datagrams
	}{
		{"plain/1500", false, gso, 1500, false},
		{"vnet/1500", true, gso, 1500, false},
		{"vnet/gso64k", true, gso, 65000, false},
		{"udpfast/plain/88", false, valid, 88, true},
		{"udpfast/vnet/88", true, valid, 88, true},
		{"udpfast/vnet/1428", true, valid, 1428, true},
	} {
		b.Run(rc.name, func(b *testing.B) {
			ours, peer := socketPair(b)
			ep := newTestEndpoint(b, ours, rc.vnet)
			wire := onWire(rc.vnet, rc.hdr, ipv4UDP(make([]byte, rc.size-header.IPv4MinimumSize-header.UDPMinimumSize)))
			d := &countingDispatcher{target: int64(b.N), done: make(chan struct{}, 1)}
			done := d.done
			if rc.fast {
				h := &countingUDP{target: int64(b.N), done: make(chan struct{}, 1)}
				if err := ep.SetUDPHandler(h); err != nil {
					b.Fatal(err)
				}
				done = h.done
			}
			ep.Attach(d)
			readEach(b, peer, wire, rc.size, done)
			if st := ep.Stats(); st.RxPackets != uint64(b.N) || rc.fast != (st.RxUDPFast == uint64(b.N)) {
				b.Fatalf("read %d packets (%d past the stack), want %d (%+v)", st.RxPackets, st.RxUDPFast, b.N, st)
			}
		})
	}
}

// readEach times the reading of b.N copies of wire (size bytes of IP
// packet), written to the endpoint's fd from peer, until done.
func readEach(b *testing.B, peer int, wire []byte, size int, done <-chan struct{}) {
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		writePeer(b, peer, wire)
	}
	<-done
	b.StopTimer()
}

// BenchmarkReadDispatchNotForwarded reads multicast packets, which the
// destination filter drops: the cost of a flood the stack never sees.
func BenchmarkReadDispatchNotForwarded(b *testing.B) {
	ours, peer := socketPair(b)
	ep, err := New(Options{FD: ours, MTU: 1500, Drop: Destinations{
		BroadcastMulticast: true,
		Broadcasts:         []netip.Addr{netip.MustParseAddr("10.9.9.255"), netip.MustParseAddr("10.8.8.255")},
	}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ep.Close)
	wire := withDst(ipv4UDP(make([]byte, 100)), netip.MustParseAddr("10.8.8.255"))
	ep.Attach(&countingDispatcher{})
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		writePeer(b, peer, wire)
	}
	for ep.Stats().RxNotForwarded < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	if st := ep.Stats(); st.RxPackets != 0 {
		b.Fatalf("delivered %d packets, want none (%+v)", st.RxPackets, st)
	}
}

func Example() {
	// fd comes from package stack/tun; here a socket stands in for it.
	fds, _ := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	ep, err := New(Options{FD: fds[0], MTU: 1500})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ep.Close()
	fmt.Println(ep.MTU(), ep.SupportedGSO() == stack.GSONotSupported)
	// Output: 1500 true
}
