package proxy

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// UDPRefusalMemory is how long a Chain remembers that its SOCKS5 proxy
// refused UDP ASSOCIATE ("command not supported", as microsocks and many
// corporate proxies answer). Until it has passed, UDP dials through the
// chain fail at once, without a handshake, so that a burst of datagrams
// does not cost a TCP connection each; after it, the next dial asks the
// proxy again (it may have been reconfigured).
const UDPRefusalMemory = 60 * time.Second

var (
	// ErrUDPRefused means the proxy answered UDP ASSOCIATE with "command
	// not supported" (SOCKS5 reply 7): it carries no UDP. It is wrapped
	// together with ErrUDPUnsupported.
	ErrUDPRefused = errors.New("the proxy refuses UDP ASSOCIATE")
	// ErrUDPRefusedRecently marks a UDP dial that a Chain failed without
	// asking the proxy, because the proxy refused UDP ASSOCIATE less than
	// UDPRefusalMemory ago. Such errors match ErrUDPRefused too; callers
	// that log one warning per refusal skip these.
	ErrUDPRefusedRecently = errors.New("refused earlier; not asked again yet")
)

// udpRefusal is a Chain's memory of its proxy's last UDP refusal. The zero
// value remembers nothing.
type udpRefusal struct {
	mu    sync.Mutex
	until time.Time // refuse UDP dials before this
}

// check returns a remembered refusal if one is still in force at now.
func (r *udpRefusal) check(now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !now.Before(r.until) {
		return nil
	}
	return r.remembered()
}

func (r *udpRefusal) remembered() error {
	return fmt.Errorf("%w (%w, for %s after a refusal): %w", ErrUDPRefused, ErrUDPRefusedRecently, UDPRefusalMemory, errCmdNotSupported)
}

// note records err if it is a refusal and returns the error to report: err
// itself for the first refusal of a period, and a remembered refusal for
// those that raced with it (they were asked at the same time), so that
// exactly one error per period is a fresh one.
func (r *udpRefusal) note(err error, now time.Time) error {
	if !errors.Is(err, ErrUDPRefused) {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Before(r.until) {
		return r.remembered()
	}
	r.until = now.Add(UDPRefusalMemory)
	return err
}
