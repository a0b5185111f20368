// Package tunlink is the gVisor link endpoint that sits on a TUN file
// descriptor (or the queues of a multi-queue TUN device). It owns the
// goroutines that read packets from the fds into the stack, one per queue,
// and the path that writes the stack's packets to them. With a
// virtio-net header on the fd it offloads checksums and TCP segmentation to
// the kernel in both directions, which is what makes the stack fast.
//
// It does not open, configure or close the TUN device: package stack/tun does.
package tunlink

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// DefaultGSOMaxSize is the largest segment the stack hands to the kernel when
// Options.GSOMaxSize is 0: the IP total length limit.
const DefaultGSOMaxSize = 1 << 16

// maxIPPacket is the largest IP packet: the IPv4 total length limit, which
// the kernel's TCP super-packets respect for IPv6 too (without BIG TCP).
const maxIPPacket = 1<<16 - 1

// Options configures an Endpoint.
type Options struct {
	// FD is the TUN file descriptor (IFF_TUN|IFF_NO_PI), as opened by package
	// stack/tun. New puts it in non-blocking mode if it is not already. The
	// Endpoint does not take ownership of FD: it never closes it, and the
	// owner (the tun.Device) must keep it open until Close has returned.
	FD int
	// Queues are the fds of the other queues of a multi-queue TUN device
	// (IFF_MULTI_QUEUE), FD being the first; like FD, the Endpoint does not
	// own them. Each queue gets its own reader goroutine, and a packet is
	// written to the queue its flow hashes to, so that the kernel (which
	// steers a flow's packets to the queue last written for it) keeps each
	// flow on one queue and reader.
	Queues []int
	// MTU is the link MTU reported to the stack; it bounds the packets the
	// stack sends without segmentation offload. Must be > 0.
	MTU uint32
	// VnetHdr says FD was opened with IFF_VNET_HDR and TUNSETOFFLOAD
	// (TUN_F_CSUM|TUN_F_TSO4|TUN_F_TSO6), so every packet read or written
	// starts with a struct virtio_net_hdr. The Endpoint then reads TCP
	// super-packets of up to 64 KiB from the kernel and lets the kernel
	// compute checksums and segment what the stack sends.
	VnetHdr bool
	// VnetHdrLen is the header size set with TUNSETVNETHDRSZ; 0 means
	// VnetHdrLen (10, the kernel default). Only 10 and 12 are valid. Ignored
	// unless VnetHdr.
	VnetHdrLen int
	// GSOMaxSize is the largest TCP segment the stack may hand to the kernel
	// for segmentation; 0 means DefaultGSOMaxSize. Ignored unless VnetHdr.
	GSOMaxSize uint32
	// Logger receives lifecycle events and fatal read errors, never
	// per-packet messages (those are counted in Stats). nil discards.
	Logger *slog.Logger
	// Drop names the destinations not forwarded: their packets are
	// dropped on arrival, before the stack does any work for them.
	Drop Destinations
	// OnFatal, if set, is called once from the reader goroutine when the
	// fd fails for good (the device was deleted), after which the reader
	// has stopped. It must not block.
	OnFatal func(error)
	// OnBurstEnd, if set, is called from the reader goroutine each time
	// the device has no packet left to read, before the reader waits: a
	// handler that gathers the datagrams of a burst sends them here. It
	// must not block.
	OnBurstEnd func()
}

// Endpoint is a stack.LinkEndpoint over a TUN fd. Create it with New, hand it
// to stack.CreateNIC, and Close it (or remove the NIC) before closing the fd.
type Endpoint struct {
	fd         int   // queue 0
	fds        []int // every queue, fd first
	vnetHdrLen int   // 0 without a virtio-net header
	gsoMaxSize uint32
	log        *slog.Logger
	onFatal    func(error)
	onBurstEnd func()
	filter     destFilter
	// udp takes plain UDP datagrams past the stack (SetUDPHandler); set
	// before the readers start, never after.
	udp UDPHandler

	mtu   atomic.Uint32
	stats counters

	// readers counts reader goroutines, including stopped ones still
	// finishing a delivery; Close joins them.
	readers sync.WaitGroup
	// fatal is set by the first reader that fails for good, so that
	// OnFatal runs once however many queues fail with the device.
	fatal atomic.Bool

	mu         sync.Mutex
	rds        []*reader // the running readers, one per queue; nil if none
	dispatcher stack.NetworkDispatcher
	onClose    func()
	closed     bool
	started    bool // the readers have been started once

	// wmu orders WriteIP's system calls before Close returns: a write
	// holds it for reading, Close takes it to set wclosed, after which
	// the fd's owner may close it.
	wmu     sync.RWMutex
	wclosed bool
	// noUSO is set once the kernel refused a UDP segmentation offload
	// packet (WriteUDPSegments).
	noUSO atomic.Bool
}

var (
	_ stack.LinkEndpoint = (*Endpoint)(nil)
	_ stack.GSOEndpoint  = (*Endpoint)(nil)
)

// New returns an Endpoint for opts.FD. The reader starts when the stack
// attaches the endpoint (Attach).
func New(opts Options) (*Endpoint, error) {
	if opts.FD < 0 {
		return nil, fmt.Errorf("tunlink: bad fd %d: open the TUN device first", opts.FD)
	}
	if opts.MTU == 0 {
		return nil, errors.New("tunlink: MTU is 0: pass the TUN device's MTU")
	}
	for _, fd := range opts.Queues {
		if fd < 0 {
			return nil, fmt.Errorf("tunlink: bad queue fd %d: open the TUN device's queues first", fd)
		}
	}
	e := &Endpoint{fd: opts.FD, fds: append([]int{opts.FD}, opts.Queues...), log: opts.Logger, onFatal: opts.OnFatal, onBurstEnd: opts.OnBurstEnd, filter: newDestFilter(opts.Drop)}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if opts.VnetHdr {
		e.vnetHdrLen = opts.VnetHdrLen
		if e.vnetHdrLen == 0 {
			e.vnetHdrLen = VnetHdrLen
		}
		if e.vnetHdrLen != VnetHdrLen && e.vnetHdrLen != maxVnetHdrLen {
			return nil, fmt.Errorf("tunlink: virtio-net header length %d: want %d or %d", e.vnetHdrLen, VnetHdrLen, maxVnetHdrLen)
		}
		e.gsoMaxSize = opts.GSOMaxSize
		if e.gsoMaxSize == 0 {
			e.gsoMaxSize = DefaultGSOMaxSize
		}
	}
	e.mtu.Store(opts.MTU)
	for _, fd := range e.fds {
		if err := ensureNonblock(fd); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// maxReadPacket is the largest IP packet one read must hold: a TCP
// super-packet with a virtio-net header, else one MTU-sized packet.
func (e *Endpoint) maxReadPacket() int {
	if e.vnetHdrLen > 0 {
		return maxIPPacket
	}
	return int(e.mtu.Load())
}

func ensureNonblock(fd int) error {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("tunlink: fcntl(%d, F_GETFL): %w: is the fd open?", fd, err)
	}
	if flags&unix.O_NONBLOCK != 0 {
		return nil
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fmt.Errorf("tunlink: make fd %d non-blocking: %w", fd, err)
	}
	return nil
}

// Attach starts the readers (one per queue) that deliver packets to
// dispatcher, or, with a nil dispatcher (the NIC is being removed), tells
// them to stop. It never waits for them: the stack calls Attach holding its
// own lock, which a reader in the middle of a delivery needs. Close does the
// waiting. Attach does nothing after Close.
func (e *Endpoint) Attach(dispatcher stack.NetworkDispatcher) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if dispatcher == nil {
		e.stopReaderLocked()
		return
	}
	if e.closed || e.rds != nil {
		return
	}
	rds := make([]*reader, 0, len(e.fds))
	for _, fd := range e.fds {
		r, err := newReader(e, fd, dispatcher)
		if err != nil {
			e.log.Error("tunlink: cannot start the TUN readers; no packets will reach the stack", "err", err)
			for _, r := range rds {
				r.file.Close() // never started: it holds no views
			}
			return
		}
		rds = append(rds, r)
	}
	e.rds, e.dispatcher, e.started = rds, dispatcher, true
	for _, r := range rds {
		e.readers.Add(1)
		go func() {
			defer e.readers.Done()
			r.run()
		}()
	}
}

// stopReaderLocked tells the running readers, if any, to stop. Callers
// hold e.mu.
func (e *Endpoint) stopReaderLocked() {
	for _, r := range e.rds {
		r.stop()
	}
	e.rds, e.dispatcher = nil, nil
}

// detach stops the other readers and forgets them all if r is still one of
// the running readers; r calls it when it quits on its own (the device is
// gone, so its other queues are too).
func (e *Endpoint) detach(r *reader) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if slices.Contains(e.rds, r) {
		e.stopReaderLocked()
	}
}

// IsAttached reports whether a reader delivers to a dispatcher.
func (e *Endpoint) IsAttached() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dispatcher != nil
}

// Wait waits for the reader to exit once Close has been called, and
// otherwise returns at once. (Stack.Wait calls it holding the stack's lock,
// right after Attach(nil) and before Close; waiting there for a reader that
// needs that lock to finish a delivery would deadlock.)
func (e *Endpoint) Wait() {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		e.readers.Wait()
	}
}

// Close runs the action set with SetOnCloseAction (the stack's: remove the
// NIC), then stops the reader and waits for it. It is idempotent, and safe
// to re-enter from that action. It does not close Options.FD. Call it
// without holding the stack's lock (the stack itself does so).
func (e *Endpoint) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	action := e.onClose
	e.onClose = nil
	e.mu.Unlock()

	if action != nil {
		action()
	}
	e.mu.Lock()
	e.stopReaderLocked()
	e.mu.Unlock()
	e.readers.Wait()
	e.wmu.Lock()
	e.wclosed = true
	e.wmu.Unlock()
}

// SetOnCloseAction sets what Close runs first.
func (e *Endpoint) SetOnCloseAction(action func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onClose = action
}

// MTU returns the link MTU.
func (e *Endpoint) MTU() uint32 { return e.mtu.Load() }

// SetMTU changes the MTU reported to the stack. The read buffers keep the
// size chosen at New, so the device MTU must not grow beyond it without a
// virtio-net header.
func (e *Endpoint) SetMTU(mtu uint32) { e.mtu.Store(mtu) }

// MaxHeaderLength is 0: TUN packets have no link-layer header.
func (*Endpoint) MaxHeaderLength() uint16 { return 0 }

// LinkAddress is empty: a TUN link has no hardware address.
func (*Endpoint) LinkAddress() tcpip.LinkAddress { return "" }

// SetLinkAddress does nothing: a TUN link has no hardware address.
func (*Endpoint) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities advertises checksum offload both ways when the fd carries a
// virtio-net header. TX: the kernel finishes TCP and UDP checksums. RX: the
// stack skips checksum checks, because the kernel's own packets carry partial
// checksums it would reject; the reader checks the others itself. (The stack
// takes RX trust only from this link-wide capability: the NIC overwrites a
// per-packet PacketBuffer.RXChecksumValidated.)
func (e *Endpoint) Capabilities() stack.LinkEndpointCapabilities {
	if e.vnetHdrLen > 0 {
		return stack.CapabilityTXChecksumOffload | stack.CapabilityRXChecksumOffload
	}
	return 0
}

// GSOMaxSize returns the largest segment the kernel segments for us, or 0
// without a virtio-net header.
func (e *Endpoint) GSOMaxSize() uint32 { return e.gsoMaxSize }

// SupportedGSO reports host (kernel) segmentation when the fd carries a
// virtio-net header.
func (e *Endpoint) SupportedGSO() stack.SupportedGSO {
	if e.vnetHdrLen > 0 {
		return stack.HostGSOSupported
	}
	return stack.GSONotSupported
}

// ARPHardwareType is none: IP packets only.
func (*Endpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }

// AddHeader does nothing: TUN packets have no link-layer header.
func (*Endpoint) AddHeader(*stack.PacketBuffer) {}

// ParseHeader accepts every packet: there is no link-layer header to parse.
func (*Endpoint) ParseHeader(*stack.PacketBuffer) bool { return true }
