package forwarder

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/forwarder/flows"
)

// VectorSender is implemented by app connections that can lend the bytes
// they have ready to a sender instead of copying them into a buffer (the
// stack's TCP connections): the app -> upstream direction of a flow to a
// host TCP socket then moves them with one writev, without the copy into
// a relay buffer.
type VectorSender interface {
	// SendVectors calls send with the bytes ready to read, in order, as
	// slices that are valid only during the call, and then consumes the
	// n bytes send returns, returning n and send's error. send must not
	// block or keep the slices. With nothing ready it returns 0 and nil
	// without calling send; after the peer's FIN, io.EOF; a failed read
	// returns its error, as Read does.
	SendVectors(send func(vecs [][]byte) (int, error)) (int, error)
}

// maxIovecs bounds the iovecs of one writev, as the stack bounds the
// slices it lends (stack.MaxSendVectors); more are sent by the next call.
const maxIovecs = 256

// errSendAgain is writev's answer when the socket buffer is full: nothing
// was sent, and the sender waits in the poller for room.
var errSendAgain = errors.New("host socket buffer full")

// errWritev marks a failed writev, whose errno is in the vecSend.
var errWritev = errors.New("writev failed")

// vecSend is the state of one sendFrom call. It is pooled, not kept in
// the hostConn: an idle flow holds none of it, not even the callbacks,
// which are bound once per pooled value (a bound method value allocates).
type vecSend struct {
	src      VectorSender
	fd       uintptr
	n        int
	err      error
	werr     unix.Errno
	sendFn   func(fd uintptr) bool
	writevFn func(vecs [][]byte) (int, error)
	iov      [maxIovecs]unix.Iovec
}

var vecSends = sync.Pool{New: func() any {
	s := new(vecSend)
	s.sendFn, s.writevFn = s.sendFD, s.writev
	return s
}}

// sendFrom writes to c, a raw TCP socket, what src has ready, from src's
// own buffers, parking in the poller while the socket buffer is full. It
// returns the bytes sent, the error of src's read (io.EOF after the app's
// FIN) and the error of the write.
func (c *hostConn) sendFrom(src VectorSender) (n int, rerr, werr error) {
	s := vecSends.Get().(*vecSend)
	s.src = src
	err := c.rc.Write(s.sendFn)
	n, rerr, errno := s.n, s.err, s.werr
	s.src, s.n, s.err, s.werr = nil, 0, nil, 0
	vecSends.Put(s)
	switch {
	case err != nil:
		return n, nil, err
	case errno != 0:
		return n, nil, c.opError("write", errno)
	}
	return n, rerr, nil
}

// sendFD is sendFrom's RawConn.Write callback: one attempt, or false to
// wait for room when the socket took nothing.
func (s *vecSend) sendFD(fd uintptr) bool {
	s.fd = fd
	n, err := s.src.SendVectors(s.writevFn)
	if err == errSendAgain {
		return false
	}
	if err == errWritev {
		err = nil // s.werr has it
	}
	s.n, s.err = n, err
	return true
}

// writev sends vecs with one system call, which may take only part of
// them.
func (s *vecSend) writev(vecs [][]byte) (int, error) {
	vecs = vecs[:min(len(vecs), maxIovecs)]
	if len(vecs) == 0 {
		return 0, nil
	}
	for i, v := range vecs {
		s.iov[i] = unix.Iovec{Base: &v[0]}
		s.iov[i].SetLen(len(v))
	}
	defer clear(s.iov[:len(vecs)]) // the pool keeps no pointers into the stack's buffers
	for {
		n, _, errno := unix.RawSyscall(unix.SYS_WRITEV, s.fd, uintptr(unsafe.Pointer(&s.iov[0])), uintptr(len(vecs)))
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, errSendAgain
		}
		s.werr = errno
		return 0, errWritev
	}
}

// vectorTarget returns upstream as the host TCP socket that an app ->
// upstream direction can send to from app's buffers, if both can.
func vectorTarget(app, upstream net.Conn) (*hostConn, VectorSender) {
	h, ok := upstream.(*hostConn)
	if !ok || !h.raw || h.datagram {
		return nil, nil
	}
	vs, ok := app.(VectorSender)
	if !ok {
		return nil, nil
	}
	return h, vs
}

// sendChunk is copyChunk without a buffer: it sends what src has ready to
// dst from src's own buffers, and reports whether the direction has ended
// and how, as writeChunk does.
func sendChunk(dst *hostConn, vs VectorSender, src net.Conn, dir string, count *flows.Half, r *relayRun) (bool, error) {
	w := r.w
	w.writeStart()
	n, rerr, werr := dst.sendFrom(vs)
	if n > 0 {
		w.writeEnd()
		count.Add(n)
	} else {
		w.writeNone()
	}
	if werr != nil {
		count.WriteFailed()
		return true, failHalf(dst, src, dir, fmt.Errorf("write: %w", werr))
	}
	return readEnded(dst, src, dir, count, r, rerr)
}
