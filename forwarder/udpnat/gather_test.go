package udpnat

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// gatherSink is a host UDP socket that the table's datagrams go to.
func gatherSink(t *testing.T) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Skipf("no UDP socket on loopback: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetReadBuffer(4 << 20); err != nil {
		t.Fatal(err)
	}
	return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// readAll reads datagrams until none comes for a moment.
func readAll(t *testing.T, c *net.UDPConn, wait time.Duration) [][]byte {
	t.Helper()
	var got [][]byte
	buf := make([]byte, 64<<10)
	for {
		c.SetReadDeadline(time.Now().Add(wait))
		n, err := c.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, bytes.Clone(buf[:n]))
	}
}

// datagram returns a payload of n bytes that names its index i.
func datagram(i, n int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, n)
	b[0] = byte(i >> 8)
	return b
}

// TestGatheredDatagramsArriveWholeInOrder: once the device reader flushes,
// datagrams to one destination wait for the end of the burst and then
// arrive one by one, whole and in order: a batch of equal sizes, a shorter
// last one, datagrams too large to be segments (sent alone), and a batch
// over the segment limit, which leaves without waiting for the flush.
func TestGatheredDatagramsArriveWholeInOrder(t *testing.T) {
	tab, _ := hostTable(t, Options{})
	rx, dst := gatherSink(t)
	// The first datagram opens the session's socket.
	if err := tab.Send(app1, dst, []byte("open")); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, rx, time.Second); len(got) != 1 {
		t.Fatalf("%d datagrams for the first one; want 1", len(got))
	}
	tab.Flush() // the first flush turns gathering on

	var want [][]byte
	send := func(p []byte) {
		t.Helper()
		want = append(want, p)
		if err := tab.Send(app1, dst, p); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		send(datagram(i, 1400))
	}
	if got := readAll(t, rx, 100*time.Millisecond); len(got) != 0 {
		t.Fatalf("%d datagrams arrived before the flush; want them gathered", len(got))
	}
	send(datagram(20, 300)) // ends the batch
	send(datagram(21, 1400))
	send(datagram(22, 4000)) // too large for a segment
	send(datagram(23, 9000))
	for i := range maxGatherSegments + 3 {
		send(datagram(24+i, 1000))
	}
	// The full batch of maxGatherSegments left without a flush.
	if got := readAll(t, rx, time.Second); len(got) != len(want)-3 {
		t.Fatalf("%d datagrams arrived before the flush; want %d", len(got), len(want)-3)
	}
	tab.Flush()
	if got := readAll(t, rx, time.Second); len(got) != 3 {
		t.Fatalf("%d datagrams arrived at the flush; want 3", len(got))
	}
	if d := tab.Stats().Dropped; d != 0 {
		t.Fatalf("%d datagrams dropped", d)
	}
}

// TestGatheredDatagramsKeepTheirOrderAndContent checks the bytes of what
// arrives for a mix of batches and single sends to two destinations.
func TestGatheredDatagramsKeepTheirOrderAndContent(t *testing.T) {
	tab, _ := hostTable(t, Options{})
	rx1, dst1 := gatherSink(t)
	rx2, dst2 := gatherSink(t)
	for _, d := range []netip.AddrPort{dst1, dst2} {
		if err := tab.Send(app1, d, []byte("open")); err != nil {
			t.Fatal(err)
		}
	}
	readAll(t, rx1, time.Second)
	readAll(t, rx2, time.Second)
	tab.Flush()
	var want1, want2 [][]byte
	sizes := []int{1200, 1200, 1200, 1452, 1453, 1200, 1200, 100, 100, 1, 1200}
	for i, n := range sizes {
		p := datagram(i, n)
		dst, want := dst1, &want1
		if i%4 == 3 {
			dst, want = dst2, &want2
		}
		*want = append(*want, p)
		if err := tab.Send(app1, dst, p); err != nil {
			t.Fatal(err)
		}
	}
	tab.Flush()
	for i, c := range []struct {
		rx   *net.UDPConn
		want [][]byte
	}{{rx1, want1}, {rx2, want2}} {
		got := readAll(t, c.rx, time.Second)
		if len(got) != len(c.want) {
			t.Fatalf("destination %d: %d datagrams; want %d", i+1, len(got), len(c.want))
		}
		for j := range got {
			if !bytes.Equal(got[j], c.want[j]) {
				t.Fatalf("destination %d datagram %d: %d bytes %x...; want %d bytes %x...",
					i+1, j, len(got[j]), got[j][:1], len(c.want[j]), c.want[j][:1])
			}
		}
	}
}

// TestSendGSOSegmentsInOneCall: the kernel takes a gathered batch in one
// sendmsg (no fallback to one call per datagram) and the receiver gets the
// datagrams apart.
func TestSendGSOSegmentsInOneCall(t *testing.T) {
	rx, dst := gatherSink(t)
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	fd, err := rawSocket(tx)
	if err != nil {
		t.Fatal(err)
	}
	p := append(append(datagram(0, 1000), datagram(1, 1000)...), datagram(2, 10)...)
	if errno := sendGSO(fd, p, 1000, dst); errno != 0 {
		t.Fatalf("sendmsg with UDP_SEGMENT: %v", errno)
	}
	got := readAll(t, rx, time.Second)
	if len(got) != 3 || len(got[0]) != 1000 || len(got[1]) != 1000 || !bytes.Equal(got[2], datagram(2, 10)) {
		t.Fatalf("got %d datagrams; want 1000, 1000 and 10 bytes", len(got))
	}
}

// TestGatherMoreFlowsThanSlots: datagrams of more interleaved flows than
// the gatherer has slots all arrive, each flow's in order.
func TestGatherMoreFlowsThanSlots(t *testing.T) {
	const flows, each = gatherSlots + 3, 5
	tab, _ := hostTable(t, Options{})
	var rxs [flows]*net.UDPConn
	var dsts [flows]netip.AddrPort
	for i := range flows {
		rxs[i], dsts[i] = gatherSink(t)
		if err := tab.Send(app1, dsts[i], []byte("open")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range flows {
		readAll(t, rxs[i], 200*time.Millisecond)
	}
	tab.Flush()
	for j := range each {
		for i := range flows {
			if err := tab.Send(app1, dsts[i], datagram(j, 1000+i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tab.Flush()
	for i := range flows {
		got := readAll(t, rxs[i], 200*time.Millisecond)
		if len(got) != each {
			t.Fatalf("flow %d: %d datagrams; want %d", i, len(got), each)
		}
		for j := range got {
			if !bytes.Equal(got[j], datagram(j, 1000+i)) {
				t.Fatalf("flow %d datagram %d: %d bytes %x; want datagram %d", i, j, len(got[j]), got[j][:2], j)
			}
		}
	}
}
