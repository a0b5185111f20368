package stack

import (
	"fmt"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// NewFDLink returns a link endpoint that reads and writes plain IP packets
// on a TUN file descriptor. It does not take ownership of fd. onClose, if
// not nil, is called when reading the fd fails for good (the device went
// away).
func NewFDLink(fd int, mtu uint32, onClose func(error)) (gvstack.LinkEndpoint, error) {
	ep, err := fdbased.New(&fdbased.Options{
		FDs:                []int{fd},
		MTU:                mtu,
		PacketDispatchMode: fdbased.Readv,
		ClosedFunc: func(e tcpip.Error) {
			if onClose != nil {
				onClose(AsError(e))
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("create link endpoint: %w", err)
	}
	return ep, nil
}
