package poll

// Slots hands out the numbers that the registrations of an epoll set
// carry in their events: an index into a table and a generation, never a
// descriptor, so that an event queued for a registration that has gone
// finds nothing, even once its index is reused. Freed indexes are reused
// first, and once every one is free the table is dropped, so that a
// flood leaves no table the size of its peak behind. It is not safe for
// concurrent use: its owner locks.
type Slots[T comparable] struct {
	slots []slotEntry[T]
	free  []uint32
	used  int
	gen   uint32 // the last generation given out, table-wide so that a stale event never matches
}

type slotEntry[T comparable] struct {
	v    T
	gen  uint32
	live bool
}

// Take gives v a slot.
func (s *Slots[T]) Take(v T) (index, gen uint32) {
	if n := len(s.free); n > 0 {
		index = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		index = uint32(len(s.slots))
		s.slots = append(s.slots, slotEntry[T]{})
	}
	s.gen++
	s.slots[index] = slotEntry[T]{v: v, gen: s.gen, live: true}
	s.used++
	return index, s.gen
}

// Get returns what holds slot index in generation gen, if anything does.
func (s *Slots[T]) Get(index, gen uint32) (T, bool) {
	if int(index) < len(s.slots) && s.slots[index].live && s.slots[index].gen == gen {
		return s.slots[index].v, true
	}
	var zero T
	return zero, false
}

// Release frees slot index if it is still in generation gen, and reports
// whether it was.
func (s *Slots[T]) Release(index, gen uint32) bool {
	if _, ok := s.Get(index, gen); !ok {
		return false
	}
	s.slots[index] = slotEntry[T]{}
	s.free = append(s.free, index)
	s.used--
	if s.used == 0 {
		// Every slot is free: start over small. A stale event for a
		// dropped slot finds it out of range or of another generation.
		s.slots, s.free = nil, nil
	}
	return true
}

// Used reports how many slots are taken.
func (s *Slots[T]) Used() int { return s.used }

// Drop frees every slot and returns what held them.
func (s *Slots[T]) Drop() []T {
	var held []T
	for _, e := range s.slots {
		if e.live {
			held = append(held, e.v)
		}
	}
	s.slots, s.free, s.used = nil, nil, 0
	return held
}

// Data packs a slot's index and generation into an event's 64 bits.
func Data(index, gen uint32) uint64 { return uint64(index) | uint64(gen)<<32 }

// Slot unpacks Data.
func Slot(data uint64) (index, gen uint32) { return uint32(data), uint32(data >> 32) }
