package stack

import (
	"fmt"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// TCP buffer ranges: small minimums keep idle connections cheap, large
// maximums let auto-tuning fill a fast local path.
const (
	tcpBufMin     = 4 << 10
	tcpBufDefault = 128 << 10
	tcpBufMax     = 8 << 20
)

func setTCPOptions(gv *gvstack.Stack) error {
	sack := tcpip.TCPSACKEnabled(true)
	rack := tcpip.TCPRecovery(tcpip.TCPRACKLossDetection)
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	// Apps that reuse ports (load generators) must not find the tuple
	// stuck in TIME_WAIT for a minute.
	timeWait := tcpip.TCPTimeWaitTimeoutOption(time.Second)
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: tcpBufMin, Default: tcpBufDefault, Max: tcpBufMax}
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: tcpBufMin, Default: tcpBufDefault, Max: tcpBufMax}
	opts := []struct {
		name string
		opt  tcpip.SettableTransportProtocolOption
	}{
		{"SACK", &sack},
		{"RACK", &rack},
		{"receive buffer moderation", &moderate},
		{"TIME_WAIT timeout", &timeWait},
		{"receive buffer range", &rcv},
		{"send buffer range", &snd},
	}
	for _, o := range opts {
		if err := gv.SetTransportProtocolOption(tcp.ProtocolNumber, o.opt); err != nil {
			return fmt.Errorf("set TCP option %s: %w", o.name, AsError(err))
		}
	}
	return nil
}
