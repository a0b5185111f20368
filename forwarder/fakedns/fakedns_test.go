package fakedns

import (
	"net/netip"
	"strconv"
	"testing"
)

func TestAddressesPerName(t *testing.T) {
	r := mustNew(t, Options{})
	v4, v6 := r.Lookup("a.example")
	if v4 != netip.MustParseAddr("198.19.0.1") || v6 != netip.MustParseAddr("fd74:6761:7465:fa4e::1") {
		t.Fatalf("first name got %s %s", v4, v6)
	}
	b4, _ := r.Lookup("b.example")
	if b4 != netip.MustParseAddr("198.19.0.2") {
		t.Fatalf("second name got %s", b4)
	}
	if again, _ := r.Lookup("a.example"); again != v4 {
		t.Fatalf("a.example moved from %s to %s", v4, again)
	}
	for _, a := range []netip.Addr{v4, v6, netip.AddrFrom16(v4.As16())} {
		if name, ok := r.Name(a); !ok || name != "a.example" {
			t.Errorf("Name(%s) = %q, %v", a, name, ok)
		}
	}
	for _, a := range []string{"198.19.0.0", "198.19.0.3", "198.19.255.255", "fd74:6761:7465:fa4e:1::1", "10.0.0.1", "::1"} {
		if name, ok := r.Name(netip.MustParseAddr(a)); ok {
			t.Errorf("Name(%s) = %q for an address never handed out", a, name)
		}
	}
	if !r.Contains(netip.MustParseAddr("198.19.200.1")) || r.Contains(netip.MustParseAddr("198.18.0.1")) {
		t.Error("Contains is wrong about the ranges")
	}
}

func TestLeastRecentlyUsedGoesFirst(t *testing.T) {
	r := mustNew(t, Options{Size: 3})
	a, _ := r.Lookup("a")
	b, _ := r.Lookup("b")
	r.Lookup("c")
	r.Name(a) // a is now more recent than b
	d, _ := r.Lookup("d")
	if d != b {
		t.Fatalf("d got %s, want b's recycled %s", d, b)
	}
	if name, _ := r.Name(a); name != "a" {
		t.Fatalf("a forgotten; the slot holds %q", name)
	}
	if _, ok := r.slots["b"]; ok {
		t.Fatal("b still in the table")
	}
	for i := range 100 {
		name := "n" + strconv.Itoa(i)
		v4, _ := r.Lookup(name)
		if got, ok := r.Name(v4); !ok || got != name {
			t.Fatalf("Name(%s) = %q after Lookup(%q)", v4, got, name)
		}
	}
	if len(r.slots) != 3 || len(r.names) != 4 {
		t.Fatalf("table grew to %d names, %d slots", len(r.slots), len(r.names)-1)
	}
}

func TestOptionsChecked(t *testing.T) {
	bad := []Options{
		{Prefix4: netip.MustParsePrefix("fd00::/64")},
		{Prefix6: netip.MustParsePrefix("10.0.0.0/8")},
		{Prefix4: netip.MustParsePrefix("10.0.0.0/24"), Size: 255},
		{Size: -1},
		{TTL: 1},
	}
	for _, o := range bad {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	if _, err := New(Options{Prefix4: netip.MustParsePrefix("10.0.0.0/24"), Size: 254}); err != nil {
		t.Error(err)
	}
}

func mustNew(t testing.TB, o Options) *Resolver {
	t.Helper()
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestStatsCountHeldAndRecycled(t *testing.T) {
	r, err := New(Options{Size: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a.example", "b.example", "a.example", "c.example", "d.example"} {
		r.Lookup(name)
	}
	if held, recycled := r.Stats(); held != 2 || recycled != 2 {
		t.Errorf("Stats = %d held, %d recycled; want 2, 2", held, recycled)
	}
}
