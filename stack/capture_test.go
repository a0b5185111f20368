package stack

import (
	"bytes"
	"encoding/binary"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// memFile is an in-memory io.WriteCloser.
type memFile struct {
	bytes.Buffer
	closed int
}

func (m *memFile) Close() error { m.closed++; return nil }

// send writes one packet of n bytes out through ep.
func send(t *testing.T, ep gvstack.LinkEndpoint, n int) {
	t.Helper()
	pkt := gvstack.NewPacketBuffer(gvstack.PacketBufferOptions{Payload: buffer.MakeWithData(make([]byte, n))})
	pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
	var l gvstack.PacketBufferList
	l.PushBack(pkt)
	defer l.DecRef()
	if _, err := ep.WritePackets(l); err != nil {
		t.Fatal(err)
	}
}

const pcapHeaderLen, pcapRecordHeaderLen = 24, 16

func TestCaptureWritesPcap(t *testing.T) {
	f := &memFile{}
	ep, c, err := NewCapture(channel.New(8, 1500, ""), CaptureOptions{Out: f, SnapLen: 100})
	if err != nil {
		t.Fatal(err)
	}
	send(t, ep, 60)
	send(t, ep, 1000) // cut to the snap length
	b := f.Bytes()
	if len(b) != pcapHeaderLen+2*pcapRecordHeaderLen+60+100 {
		t.Fatalf("file of %d bytes", len(b))
	}
	le := binary.LittleEndian
	if le.Uint32(b) != 0xa1b2c3d4 || le.Uint32(b[16:]) != 100 || le.Uint32(b[20:]) != 101 {
		t.Errorf("header % x: want pcap magic, snaplen 100, LINKTYPE_RAW", b[:pcapHeaderLen])
	}
	second := b[pcapHeaderLen+pcapRecordHeaderLen+60:]
	if incl, orig := le.Uint32(second[8:]), le.Uint32(second[12:]); incl != 100 || orig != 1000 {
		t.Errorf("second record: %d of %d bytes kept, want 100 of 1000", incl, orig)
	}
	if err := c.Close(); err != nil || f.closed != 1 {
		t.Errorf("Close = %v, file closed %d times", err, f.closed)
	}
	c.Close()
	send(t, ep, 60) // after Close: dropped, no panic
	if f.closed != 1 || f.Len() != len(b) {
		t.Error("the capture went on after Close")
	}
}

func TestCaptureStopsAtMaxSize(t *testing.T) {
	f := &memFile{}
	const max = pcapHeaderLen + 3*(pcapRecordHeaderLen+100) + 50
	ep, c, err := NewCapture(channel.New(8, 1500, ""), CaptureOptions{Out: f, MaxSize: max})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		send(t, ep, 100)
	}
	if f.Len() != pcapHeaderLen+3*(pcapRecordHeaderLen+100) || f.closed != 1 || !c.Stopped() {
		t.Errorf("file of %d bytes, closed %d times, stopped %v; want 3 whole records and one close", f.Len(), f.closed, c.Stopped())
	}
	if c.Close() != nil || f.closed != 1 {
		t.Error("Close after the limit closed again")
	}
}
