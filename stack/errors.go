package stack

import (
	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/tungate/tungate/stack/flow"
)

// gvError keeps gVisor's message while matching the sentinels of package
// flow (flow.ErrConnectionRefused and the others).
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
		sentinel = flow.ErrConnectionRefused
	case *tcpip.ErrConnectionReset, *tcpip.ErrConnectionAborted:
		sentinel = flow.ErrConnectionReset
	case *tcpip.ErrTimeout:
		sentinel = flow.ErrTimeout
	case *tcpip.ErrClosedForSend, *tcpip.ErrClosedForReceive, *tcpip.ErrInvalidEndpointState:
		sentinel = flow.ErrClosed
	}
	return &gvError{err: err, sentinel: sentinel}
}
