package stack

import (
	"errors"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// Errors that gVisor's tcpip.Error values turn into, for errors.Is.
var (
	ErrConnectionRefused = errors.New("connection refused")
	ErrConnectionReset   = errors.New("connection reset")
	ErrTimeout           = errors.New("timed out")
	ErrClosed            = errors.New("endpoint closed")
)

// gvError keeps gVisor's message while matching our sentinels.
type gvError struct {
	err      tcpip.Error
	sentinel error
}

func (e *gvError) Error() string { return e.err.String() }
func (e *gvError) Unwrap() error { return e.sentinel }

// AsError is the one place where a tcpip.Error becomes an error. A nil
// tcpip.Error gives nil.
func AsError(err tcpip.Error) error {
	if err == nil {
		return nil
	}
	var sentinel error
	switch err.(type) {
	case *tcpip.ErrConnectionRefused:
		sentinel = ErrConnectionRefused
	case *tcpip.ErrConnectionReset, *tcpip.ErrConnectionAborted:
		sentinel = ErrConnectionReset
	case *tcpip.ErrTimeout:
		sentinel = ErrTimeout
	case *tcpip.ErrClosedForSend, *tcpip.ErrClosedForReceive, *tcpip.ErrInvalidEndpointState:
		sentinel = ErrClosed
	}
	return &gvError{err: err, sentinel: sentinel}
}
