package stack

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/stack/flow"
	"github.com/tungate/tungate/stack/tunlink"
)

// fuzzLink is a stack on a TUN link endpoint whose fd is one end of a
// SOCK_SEQPACKET pair (which keeps packet boundaries like a TUN fd); the
// fuzzer writes packets into the other end.
type fuzzLink struct {
	peer int
	ep   *tunlink.Endpoint
	sent uint64 // packets written so far
}

func newFuzzLink(t testing.TB, vnet bool) *fuzzLink {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := tunlink.New(tunlink.Options{FD: fds[0], MTU: 1500, VnetHdr: vnet,
		Drop: tunlink.Destinations{BroadcastMulticast: true}})
	if err != nil {
		t.Fatal(err)
	}
	h := &recordingHandler{tcp: make(chan flow.TCPRequest, 1), echo: make(chan *flow.EchoRequest, 1)}
	s, err := New(Options{Link: ep, Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	// What the stack answers (resets, ICMP errors) is read and dropped.
	var drained sync.WaitGroup
	drained.Add(1)
	go func() {
		defer drained.Done()
		buf := make([]byte, 1<<17)
		for {
			if n, err := unix.Read(fds[1], buf); n <= 0 && err != unix.EINTR {
				return
			}
		}
	}()
	t.Cleanup(func() {
		s.Close()
		unix.Shutdown(fds[1], unix.SHUT_RDWR)
		drained.Wait()
		unix.Close(fds[0])
		unix.Close(fds[1])
	})
	return &fuzzLink{peer: fds[1], ep: ep}
}

// read counts the packets the endpoint has read: each one is either
// delivered or counted as one kind of drop.
func (l *fuzzLink) read() uint64 {
	st := l.ep.Stats()
	return st.RxPackets + st.RxShort + st.RxBadVersion + st.RxTruncated + st.RxBadVnetHdr + st.RxBadChecksum + st.RxNotForwarded
}

// FuzzIngress feeds raw bytes to the TUN link endpoint, with and without a
// virtio-net header in front, and through it to the stack and a handler
// that refuses every flow. Each input must be read and accounted for (the
// reader must neither stop nor hang), and nothing may panic. The seeds in
// testdata/fuzz/FuzzIngress are the malformed packets of tunlink's tests
// and well-formed TCP, UDP and ICMP packets of both families.
func FuzzIngress(f *testing.F) {
	links := map[bool]*fuzzLink{false: newFuzzLink(f, false), true: newFuzzLink(f, true)}
	f.Fuzz(func(t *testing.T, vnet bool, pkt []byte) {
		if len(pkt) > 1<<16 {
			t.Skip("larger than any TUN read")
		}
		l := links[vnet]
		if _, err := unix.Write(l.peer, pkt); err != nil {
			t.Fatalf("write: %v", err)
		}
		l.sent++
		deadline := time.Now().Add(5 * time.Second)
		for l.read() < l.sent {
			if time.Now().After(deadline) {
				t.Fatalf("the endpoint read %d packets of %d; stats %+v", l.read(), l.sent, l.ep.Stats())
			}
			time.Sleep(50 * time.Microsecond)
		}
	})
}
