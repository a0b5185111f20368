package stack

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/tungate/tungate/stack/flow"
	"github.com/tungate/tungate/stack/tunlink"
)

// datagramPath is the UDP transport handler for a flow.DatagramHandler.
func (s *Stack) datagramPath(h flow.DatagramHandler) func(gvstack.TransportEndpointID, *gvstack.PacketBuffer) bool {
	return func(id gvstack.TransportEndpointID, pkt *gvstack.PacketBuffer) bool {
		hdr := header.UDP(pkt.TransportHeader().Slice())
		nh := pkt.Network()
		data := pkt.Data()
		lengthOK, sumOK := header.UDPValid(hdr, data.Checksum, uint16(data.Size()), pkt.NetworkProtocolNumber,
			nh.SourceAddress(), nh.DestinationAddress(), pkt.RXChecksumValidated)
		size := int(hdr.Length()) - header.UDPMinimumSize
		var payload []byte
		ok := lengthOK && sumOK
		if ok && size > 0 {
			payload, ok = data.PullUp(size)
		}
		if !ok {
			if lengthOK && !sumOK {
				s.gv.Stats().UDP.ChecksumErrors.Increment()
			} else {
				s.gv.Stats().UDP.MalformedPacketsReceived.Increment()
			}
			return true // dropped, and no ICMP for garbage
		}
		src := netip.AddrPortFrom(netipAddr(id.RemoteAddress), id.RemotePort)
		dst := netip.AddrPortFrom(netipAddr(id.LocalAddress), id.LocalPort)
		return h.HandleUDPDatagram(src, dst, payload)
	}
}

func netipAddr(a tcpip.Address) netip.Addr {
	if a.Len() == 4 {
		return netip.AddrFrom4(a.As4())
	}
	return netip.AddrFrom16(a.As16())
}

// Largest UDP payloads that one IP packet carries.
const (
	maxUDPPayload4 = 0xffff - header.IPv4MinimumSize - header.UDPMinimumSize
	maxUDPPayload6 = 0xffff - header.UDPMinimumSize
)

// errDatagramTooLarge means a payload does not fit in one IP packet.
var errDatagramTooLarge = errors.New("UDP payload too large for one IP packet")

// packetBufs holds buffers for one whole IP packet; a cache shared by every
// stack, holding nothing between uses.
var packetBufs = sync.Pool{New: func() any {
	b := make([]byte, header.IPv6MinimumSize+header.UDPMinimumSize+maxUDPPayload6)
	return &b
}}

// SendTo writes a UDP datagram from src to the app at dst into the
// device, whatever src is (the NIC spoofs): replies reach the app from the
// address and port they came from. It does not keep payload. Datagrams
// larger than the device's MTU go as one packet, which the kernel accepts
// from a TUN device. On the UDP fast path the packet goes straight to the
// link, else through gVisor's NIC.
func (s *Stack) SendTo(src, dst netip.AddrPort, payload []byte) error {
	bp := packetBufs.Get().(*[]byte)
	defer packetBufs.Put(bp)
	pkt, proto, err := buildUDP(*bp, src, dst, payload)
	if err != nil {
		return err
	}
	if s.fast != nil {
		if err := s.fast.WriteIP(pkt); err != nil {
			return fmt.Errorf("send UDP %s -> %s: %w", src, dst, err)
		}
		return nil
	}
	if err := s.gv.WriteRawPacket(nicID, proto, buffer.MakeWithData(pkt)); err != nil {
		return fmt.Errorf("send UDP %s -> %s: %w", src, dst, AsError(err))
	}
	return nil
}

// SendSegments delivers datagrams from src to the app at dst, each as
// long as the first but the last (which may be shorter), as SendTo would
// one by one; on the UDP fast path over a link with UDP segmentation
// offload, with one write for all of them. It does not keep segs.
func (s *Stack) SendSegments(src, dst netip.AddrPort, segs [][]byte) error {
	if s.fast != nil && len(segs) > 1 {
		err := s.sendSegments(src, dst, segs)
		if !errors.Is(err, tunlink.ErrNoUSO) {
			return err
		}
	}
	var errs error
	for _, p := range segs {
		if err := s.SendTo(src, dst, p); err != nil && errs == nil {
			errs = err
		}
	}
	return errs
}

// sendSegments writes segs as one packet for the kernel to split.
func (s *Stack) sendSegments(src, dst netip.AddrPort, segs [][]byte) error {
	total := 0
	for _, p := range segs {
		total += len(p)
	}
	bp := packetBufs.Get().(*[]byte)
	defer packetBufs.Put(bp)
	hdr, _, err := udpHeaders(*bp, src, dst, total)
	if err != nil {
		return err
	}
	// The kernel completes each segment's checksum from this sum, and
	// trusts it on local delivery without summing the payload at all.
	from, to := tcpipAddr(src.Addr()), tcpipAddr(dst.Addr())
	u := header.UDP(hdr[len(hdr)-header.UDPMinimumSize:])
	u.SetChecksum(header.PseudoHeaderChecksum(header.UDPProtocolNumber, from, to, u.Length()))
	if err := s.fast.WriteUDPSegments(hdr, segs); err != nil {
		if errors.Is(err, tunlink.ErrNoUSO) {
			return err
		}
		return fmt.Errorf("send UDP %s -> %s: %w", src, dst, err)
	}
	return nil
}

// buildUDP lays out an IP packet carrying payload from src to dst in buf.
func buildUDP(buf []byte, src, dst netip.AddrPort, payload []byte) ([]byte, tcpip.NetworkProtocolNumber, error) {
	hdr, proto, err := udpHeaders(buf, src, dst, len(payload))
	if err != nil {
		return nil, 0, err
	}
	pkt := buf[:len(hdr)+len(payload)]
	ipLen := len(hdr) - header.UDPMinimumSize
	udpLen := len(pkt) - ipLen
	from, to := tcpipAddr(src.Addr()), tcpipAddr(dst.Addr())
	u := header.UDP(pkt[ipLen:])
	copy(u[header.UDPMinimumSize:], payload)
	sum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, from, to, uint16(udpLen))
	sum = checksum.Checksum(u, sum)
	if sum != 0xffff {
		sum = ^sum // a zero checksum would mean "none"; 0xffff stands for it
	}
	u.SetChecksum(sum)
	return pkt, proto, nil
}

// udpHeaders lays out in buf the IP and UDP headers of a datagram of n
// payload bytes from src to dst, the UDP checksum left zero, and returns
// them.
func udpHeaders(buf []byte, src, dst netip.AddrPort, n int) ([]byte, tcpip.NetworkProtocolNumber, error) {
	from, to := tcpipAddr(src.Addr()), tcpipAddr(dst.Addr())
	udpLen := header.UDPMinimumSize + n
	ipLen, proto, limit := header.IPv6MinimumSize, header.IPv6ProtocolNumber, maxUDPPayload6
	if src.Addr().Is4() {
		ipLen, proto, limit = header.IPv4MinimumSize, header.IPv4ProtocolNumber, maxUDPPayload4
	}
	if n > limit {
		return nil, 0, fmt.Errorf("send UDP %s -> %s: %w: %d bytes", src, dst, errDatagramTooLarge, n)
	}
	pkt := buf[:ipLen+header.UDPMinimumSize]
	if proto == header.IPv4ProtocolNumber {
		ip := header.IPv4(pkt)
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(ipLen + udpLen), TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
			SrcAddr: from, DstAddr: to,
		})
		ip.SetChecksum(^ip.CalculateChecksum())
	} else {
		header.IPv6(pkt).Encode(&header.IPv6Fields{
			PayloadLength: uint16(udpLen), TransportProtocol: header.UDPProtocolNumber,
			HopLimit: 64, SrcAddr: from, DstAddr: to,
		})
	}
	header.UDP(pkt[ipLen:]).Encode(&header.UDPFields{SrcPort: src.Port(), DstPort: dst.Port(), Length: uint16(udpLen)})
	return pkt, proto, nil
}

func tcpipAddr(a netip.Addr) tcpip.Address {
	if a.Is4() {
		return tcpip.AddrFrom4(a.As4())
	}
	return tcpip.AddrFrom16(a.As16())
}
