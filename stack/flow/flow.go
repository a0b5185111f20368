// Package flow holds the types in which package stack hands flows out:
// connection and session requests, echo requests, and the error sentinels
// of the stack's boundary. It imports no gVisor package, so that whatever
// handles flows (package forwarder) can be built and tested against plain
// fakes of these interfaces.
package flow

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

// Errors that the stack's failures turn into, for errors.Is.
var (
	ErrConnectionRefused = errors.New("connection refused")
	ErrConnectionReset   = errors.New("connection reset")
	ErrTimeout           = errors.New("timed out")
	ErrClosed            = errors.New("endpoint closed")
)

// TCPRequest is one connection request (an app's SYN) that has not been
// answered yet. Exactly one of Accept or Refuse must be called, once.
type TCPRequest interface {
	// Src is the app's address and port.
	Src() netip.AddrPort
	// Dst is the destination the app dialed.
	Dst() netip.AddrPort
	// Accept completes the app's handshake and returns the app's side of
	// the connection, owned by the caller. It fails if the app gave up
	// meanwhile (or the stack is closing), and once ctx ends before the
	// app's handshake is complete: the half-open connection is then
	// abandoned and the app's SYN answered with a reset, whatever the
	// stack's SYN-ACK retransmissions would do. The connection also implements
	// Reset() error (end with RST), CloseWrite() error, WaitReadable()
	// error, NotifyReadable(func()) bool, PeerClosed() bool (the app's
	// FIN has arrived) and SendVectors(func([][]byte) (int, error)) (int,
	// error) (lend what the app sent to a sender without copying it),
	// which the relay finds by type assertion.
	Accept(ctx context.Context) (net.Conn, error)
	// Refuse answers the SYN with a reset: the app sees "connection
	// refused" at once.
	Refuse()
}

// UDPRequest is the first datagram of a UDP session (one app source, one
// destination) that has no endpoint yet.
type UDPRequest interface {
	// Src is the app's address and port.
	Src() netip.AddrPort
	// Dst is the destination the app sent to.
	Dst() netip.AddrPort
	// Accept creates the app's side of the session, a connected datagram
	// connection owned by the caller (it also implements
	// WaitReadable() error); the first datagram is its first read. It
	// never blocks. Call it at most once, before HandleUDP returns.
	Accept() (net.Conn, error)
	// Refuse tells the app that Dst refused its datagrams: an ICMP (or
	// ICMPv6) port unreachable from Dst to Src, so the app's socket
	// reports "connection refused". Before Accept it answers the first
	// datagram; after Accept it may be called any number of times (a
	// destination that refuses a datagram mid-session), and closing the
	// accepted connection stays the caller's job. It never blocks.
	Refuse()
}

// EchoRequest is an ICMP or ICMPv6 echo request that an app sent. The
// stack never answers it itself: a reply must come from the real
// destination, through Reply.
type EchoRequest struct {
	// Src is the app's address, Dst the address it pinged.
	Src, Dst netip.Addr
	// ID and Seq are the echo identifier and sequence number.
	ID, Seq uint16
	// Payload is the echo data, owned by the request.
	Payload []byte
	// Replier sends replies back to the app; the stack sets it.
	Replier EchoReplier
}

// EchoReplier sends echo replies to the app.
type EchoReplier interface {
	// ReplyEcho sends an echo reply from req.Dst to req.Src carrying
	// req's ID, Seq and Payload, with the given TTL (hop limit). It must
	// not block.
	ReplyEcho(req *EchoRequest, ttl uint8) error
}

// Reply sends the echo reply to r through r.Replier.
func (r *EchoRequest) Reply(ttl uint8) error { return r.Replier.ReplyEcho(r, ttl) }
