package dns

import "net"

// WaitReadable returns once a Read would not block (an answer, the end of
// the conversation, or Close), without taking a buffer: the forwarder's
// readers wait here, so that an idle DNS flow holds none. It returns
// net.ErrClosed after Close.
func (f *flow) WaitReadable() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for !f.closed && len(f.answers) == 0 && len(f.out) == 0 && !f.ended() {
		f.ready.Wait()
	}
	if f.closed {
		return net.ErrClosed
	}
	return nil
}
