package poll

import "testing"

func TestSlotsReuseAndStaleGenerations(t *testing.T) {
	var s Slots[string]
	ia, ga := s.Take("a")
	ib, gb := s.Take("b")
	if v, ok := s.Get(ia, ga); !ok || v != "a" {
		t.Fatalf("Get(a) = %q, %v", v, ok)
	}
	if !s.Release(ia, ga) || s.Release(ia, ga) {
		t.Fatal("Release: want true once, then false")
	}
	ic, gc := s.Take("c")
	if ic != ia || gc == ga {
		t.Fatalf("c took slot %d gen %d; want a's freed slot %d in a new generation", ic, gc, ia)
	}
	if _, ok := s.Get(ia, ga); ok {
		t.Error("a stale generation still finds the slot's new holder")
	}
	if s.Release(ia, ga) {
		t.Error("a stale generation released the slot's new holder")
	}
	if i, g := Slot(Data(ib, gb)); i != ib || g != gb {
		t.Errorf("Slot(Data(%d, %d)) = %d, %d", ib, gb, i, g)
	}
	if n := s.Used(); n != 2 {
		t.Fatalf("Used = %d, want 2", n)
	}
	s.Release(ib, gb)
	s.Release(ic, gc)
	if s.slots != nil || s.free != nil || s.Used() != 0 {
		t.Errorf("table of %d slots, %d free kept with every slot free", len(s.slots), len(s.free))
	}
	if _, ok := s.Get(ib, gb); ok {
		t.Error("a slot of the dropped table still found")
	}
	s.Take("d")
	s.Take("e")
	if held := s.Drop(); len(held) != 2 || s.Used() != 0 || s.slots != nil {
		t.Errorf("Drop returned %v and left %d used", held, s.Used())
	}
}
