package tunlink

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/tungate/tungate/internal/leaktest"
)

// TestWriteQueueByFlow checks that every packet of a flow is written to one
// queue and that flows spread over the queues: the kernel keeps a flow on
// the queue last written for it.
func TestWriteQueueByFlow(t *testing.T) {
	const queues = 4
	ours, peers := socketPairs(t, queues)
	ep, err := New(Options{FD: ours[0], Queues: ours[1:], MTU: 1500})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ep.Close)
	used := map[int]int{} // queue -> flows written to it
	for port := range 64 {
		want := -1
		for range 3 {
			pkt := outboundTCPPorts(80, uint16(40000+port))
			if _, err := ep.WritePackets(listOf(pkt)); err != nil {
				t.Fatalf("WritePackets: %v", err)
			}
			pkt.DecRef()
			q := queueWritten(t, peers)
			if want >= 0 && q != want {
				t.Fatalf("flow to port %d: packet on queue %d, earlier ones on %d", 40000+port, q, want)
			}
			want = q
		}
		used[want]++
	}
	if len(used) != queues {
		t.Fatalf("64 flows used queues %v, want all %d", used, queues)
	}
	for q, n := range used {
		if n < 4 {
			t.Errorf("queue %d got %d of 64 flows: the hash spreads badly (%v)", q, n, used)
		}
	}
}

// socketPairs returns n socket pairs standing in for the queues of a
// multi-queue device: our ends and the test's.
func socketPairs(t *testing.T, n int) (ours, peers []int) {
	for range n {
		o, p := socketPair(t)
		ours, peers = append(ours, o), append(peers, p)
	}
	return ours, peers
}

// outboundTCPPorts is an IPv4 outboundTCP with the given ports.
func outboundTCPPorts(src, dst uint16) *stack.PacketBuffer {
	pkt := outboundTCP(header.IPv4ProtocolNumber, []byte("x"))
	tcp := header.TCP(pkt.TransportHeader().Slice())
	tcp.SetSourcePort(src)
	tcp.SetDestinationPort(dst)
	return pkt
}

func listOf(pkts ...*stack.PacketBuffer) stack.PacketBufferList {
	var l stack.PacketBufferList
	for _, p := range pkts {
		l.PushBack(p)
	}
	return l
}

// queueWritten returns which of the peers has the one packet written, and
// fails if none or several have one.
func queueWritten(t *testing.T, peers []int) int {
	t.Helper()
	got := -1
	buf := make([]byte, 2048)
	for i, fd := range peers {
		n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err == unix.EAGAIN {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("read queue %d: %d bytes, %v", i, n, err)
		}
		if got >= 0 {
			t.Fatalf("one packet arrived on queues %d and %d", got, i)
		}
		got = i
	}
	if got < 0 {
		t.Fatal("the packet arrived on no queue")
	}
	return got
}

// TestTUNMultiQueue moves several flows both ways through a real
// multi-queue TUN device and checks every byte, and that the kernel spread
// the flows over more than one queue's reader.
func TestTUNMultiQueue(t *testing.T) {
	const flows, size = 8, 16 << 20
	ts := newTunStackQueues(t, true, 2, nil)
	errs := make(chan error, 2*flows)
	for i := range flows {
		go func() {
			_, err := ts.upload(stackAddr4, size)
			if err != nil {
				err = fmt.Errorf("upload %d: %w", i, err)
			}
			errs <- err
		}()
		go func() {
			_, err := ts.download(stackAddr6, size)
			if err != nil {
				err = fmt.Errorf("download %d: %w", i, err)
			}
			errs <- err
		}()
	}
	for range 2 * flows {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	per := ts.ep.queuePackets()
	t.Logf("packets per queue: %v", per)
	// Writes on one queue only would pull every flow there after its SYN.
	if len(per) != 2 || min(per[0], per[1])*10 < per[0]+per[1] {
		t.Errorf("packets per queue %v: want each queue to read at least a tenth", per)
	}
}

// queuePackets returns how many packets each running reader delivered, by
// queue.
func (e *Endpoint) queuePackets() []uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n []uint64
	for _, r := range e.rds {
		n = append(n, r.packets.Load())
	}
	return n
}

// TestQueueFailureStopsAll checks that every queue delivers, and that one
// queue failing (as all do when the device goes) stops every reader and
// calls OnFatal once.
func TestQueueFailureStopsAll(t *testing.T) {
	leaks := leaktest.Take()
	ours, peers := socketPairs(t, 3)
	var fatal atomic.Int32
	ep, err := New(Options{FD: ours[0], Queues: ours[1:], MTU: 1500, OnFatal: func(error) { fatal.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	d := newRecordingDispatcher()
	ep.Attach(d)
	for _, p := range peers {
		writePeer(t, p, ipv4UDP(nil))
		d.next(t)
	}
	if got := ep.queuePackets(); len(got) != 3 || got[0] != 1 || got[1] != 1 || got[2] != 1 {
		t.Fatalf("packets per queue %v, want one on each of 3", got)
	}
	unix.Close(peers[1])
	for deadline := time.Now().Add(5 * time.Second); ep.IsAttached(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("still attached 5s after a queue's peer closed")
		}
	}
	ep.Close()
	leaks.Wait(t, 0) // every reader has exited, not only the failed one
	if n := fatal.Load(); n != 1 {
		t.Errorf("OnFatal ran %d times, want 1", n)
	}
}

func TestNewRejectsBadQueue(t *testing.T) {
	ours, _ := socketPair(t)
	if ep, err := New(Options{FD: ours, Queues: []int{-1}, MTU: 1500}); err == nil {
		ep.Close()
		t.Fatal("New with queue fd -1 succeeded, want an error")
	}
}
