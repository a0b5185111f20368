package tunlink

import "sync/atomic"

// Stats are the Endpoint's packet counters since New. Drops are counted, not
// logged, because they happen on the per-packet path.
type Stats struct {
	// RxPackets and RxBytes count packets delivered to the stack or taken
	// by the UDP handler (bytes without the virtio-net header; a TCP
	// super-packet counts once).
	RxPackets, RxBytes uint64
	// RxShort counts reads too short for a virtio-net header or an IP
	// header, including empty reads.
	RxShort uint64
	// RxBadVersion counts packets whose IP version is neither 4 nor 6.
	RxBadVersion uint64
	// RxTruncated counts packets shorter than their IP length field says,
	// such as a packet larger than the read buffer.
	RxTruncated uint64
	// RxBadVnetHdr counts packets with a GSO type we did not ask the kernel
	// for (anything but none, TCPv4, TCPv6).
	RxBadVnetHdr uint64
	// RxBadChecksum counts packets with a wrong IPv4 header, TCP or UDP
	// checksum, checked here (with a virtio-net header) for packets the
	// kernel did not vouch for.
	RxBadChecksum uint64
	// RxNotForwarded counts packets dropped for their destination
	// (Options.Drop: broadcast and multicast).
	RxNotForwarded uint64
	// TxPackets and TxBytes count packets written to the fd (bytes without
	// the virtio-net header; a TCP super-packet counts once).
	TxPackets, TxBytes uint64
	// TxErrors counts packets the fd refused (full socket buffer, device
	// gone, header the kernel rejected).
	TxErrors uint64
	// RxUDPFast counts the datagrams the UDP handler took past the stack
	// (SetUDPHandler), and TxUDPFast the packets written with WriteIP and
	// the datagrams written with WriteUDPSegments; RxPackets and
	// TxPackets count them too (segments written together once).
	RxUDPFast, TxUDPFast uint64
}

type counters struct {
	rxPackets, rxBytes                                              atomic.Uint64
	rxShort, rxBadVersion, rxTruncated, rxBadVnetHdr, rxBadChecksum atomic.Uint64
	rxNotForwarded                                                  atomic.Uint64
	txPackets, txBytes, txErrors                                    atomic.Uint64
	rxUDPFast, txUDPFast                                            atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (e *Endpoint) Stats() Stats {
	c := &e.stats
	return Stats{
		RxPackets:      c.rxPackets.Load(),
		RxBytes:        c.rxBytes.Load(),
		RxShort:        c.rxShort.Load(),
		RxBadVersion:   c.rxBadVersion.Load(),
		RxTruncated:    c.rxTruncated.Load(),
		RxBadVnetHdr:   c.rxBadVnetHdr.Load(),
		RxBadChecksum:  c.rxBadChecksum.Load(),
		RxNotForwarded: c.rxNotForwarded.Load(),
		TxPackets:      c.txPackets.Load(),
		TxBytes:        c.txBytes.Load(),
		TxErrors:       c.txErrors.Load(),
		RxUDPFast:      c.rxUDPFast.Load(),
		TxUDPFast:      c.txUDPFast.Load(),
	}
}
