package udpnat

import (
	"context"
	"net/netip"
	"time"
)

// resolve runs a destination's Resolve (Destination.Resolve) and then
// sends what waited for it, or refuses the destination if it failed. It
// runs on a goroutine of the table's group.
func (t *Table) resolve(s *session, dst netip.AddrPort, d *dest, resolve func(context.Context) (netip.AddrPort, error), name string) {
	start := time.Now()
	ctx, cancel := t.ctxWithOpenTimeout()
	to, err := resolve(ctx)
	cancel()
	took := max(time.Since(start), time.Nanosecond) // non-zero: this one waited
	m := d.m
	t.mu.Lock()
	if m.closed.Load() {
		t.mu.Unlock() // whoever closed it told the meter
		return
	}
	if s.dests[dst] != d {
		// The cache started over (maxDests) and told the meter; what
		// waited is lost.
		t.dropped.Add(uint64(m.dropPending(d)))
		t.mu.Unlock()
		return
	}
	if err != nil {
		delete(s.dests, dst)
		waited := m.dropPending(d) > 0
		app := s.app
		t.mu.Unlock()
		t.openFailed.Add(1)
		t.log.Debug("udp destination not resolved", "src", app, "dst", dst, "name", name, "err", err)
		if d.meter != nil {
			d.meter.Opened(took, err)
			d.meter.Forgotten(false)
		}
		if waited {
			t.opts.App.PortUnreachable(app, dst)
		}
		return
	}
	d.resolving = false
	if to.IsValid() {
		d.to = to
		m.reverse(to, dst)
	} else {
		d.name = name
	}
	open := m.conn != nil
	if open {
		t.flushLocked(m)
	} else if d.meter != nil {
		m.waiting = append(m.waiting, d.meter)
	}
	t.mu.Unlock()
	if open && d.meter != nil {
		d.meter.Opened(took, nil)
	}
}

// dropPending forgets the datagrams waiting for d and returns how many
// there were; under the table's lock.
func (m *mapping) dropPending(d *dest) int {
	kept := m.pending[:0]
	for _, p := range m.pending {
		if p.d != d {
			kept = append(kept, p)
		}
	}
	n := len(m.pending) - len(kept)
	clear(m.pending[len(kept):])
	m.pending = kept
	return n
}
