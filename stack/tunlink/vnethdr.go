package tunlink

import "encoding/binary"

// VnetHdrLen is the size of struct virtio_net_hdr, the header the kernel puts
// in front of every packet on a TUN fd opened with IFF_VNET_HDR. It is also
// the kernel's default for TUNSETVNETHDRSZ.
const VnetHdrLen = 10

// maxVnetHdrLen bounds Options.VnetHdrLen: 12 is struct
// virtio_net_hdr_mrg_rxbuf, whose extra num_buffers field we leave zero.
const maxVnetHdrLen = 12

// Values from linux/virtio_net.h.
const (
	vnetFlagNeedsCsum = 1 // L4 checksum is partial: pseudo-header only.
	vnetFlagDataValid = 2 // checksum already verified by the sender.

	vnetGSONone  = 0
	vnetGSOTCPv4 = 1
	vnetGSOTCPv6 = 4
	vnetGSOUDPL4 = 5    // UDP segmentation (USO), Linux 6.2+
	vnetGSOECN   = 0x80 // flag bit on top of the GSO type
)

// vnetHdr is struct virtio_net_hdr.
type vnetHdr struct {
	flags      uint8
	gsoType    uint8
	hdrLen     uint16
	gsoSize    uint16
	csumStart  uint16
	csumOffset uint16
}

// The TUN driver uses the host's byte order for the header unless
// TUNSETVNETLE/TUNSETVNETBE was set, which we never do.
var vnetOrder = binary.NativeEndian

// encode writes h into b, which must hold at least VnetHdrLen bytes; any
// bytes of b beyond that are zeroed.
func (h *vnetHdr) encode(b []byte) {
	b[0] = h.flags
	b[1] = h.gsoType
	vnetOrder.PutUint16(b[2:], h.hdrLen)
	vnetOrder.PutUint16(b[4:], h.gsoSize)
	vnetOrder.PutUint16(b[6:], h.csumStart)
	vnetOrder.PutUint16(b[8:], h.csumOffset)
	clear(b[VnetHdrLen:])
}

// decodeVnetHdr reads a header from b, which must hold at least VnetHdrLen
// bytes.
func decodeVnetHdr(b []byte) vnetHdr {
	return vnetHdr{
		flags:      b[0],
		gsoType:    b[1],
		hdrLen:     vnetOrder.Uint16(b[2:]),
		gsoSize:    vnetOrder.Uint16(b[4:]),
		csumStart:  vnetOrder.Uint16(b[6:]),
		csumOffset: vnetOrder.Uint16(b[8:]),
	}
}
