package tunlink

import (
	"bytes"
	"net/netip"
	"testing"
)

// withDst returns pkt (IPv4 or IPv6) with its destination address set to
// dst. Checksums are left stale: the filter runs before they are checked.
func withDst(pkt []byte, dst netip.Addr) []byte {
	b := bytes.Clone(pkt)
	if dst.Is4() {
		a := dst.As4()
		copy(b[16:20], a[:])
	} else {
		a := dst.As16()
		copy(b[24:40], a[:])
	}
	return b
}

func TestReadDropsNotForwarded(t *testing.T) {
	v4, v6 := ipv4UDP([]byte("x")), ipv6UDP([]byte("x"))
	lanBcast := netip.MustParseAddr("192.168.7.255")
	drop := Destinations{BroadcastMulticast: true, Broadcasts: []netip.Addr{lanBcast, netip.MustParseAddr("fe80::1")}}
	for _, tc := range []struct {
		dst  string
		drop bool
	}{
		{"255.255.255.255", true},
		{"192.168.7.255", true},
		{"224.0.0.251", true},
		{"239.255.255.250", true},
		{"ff02::1", true},
		{"ff05::1:3", true},
		{"192.168.7.254", false},
		{"223.255.255.255", false},
		{"240.0.0.1", false},
		{"fe80::1", false}, // not IPv4: Broadcasts ignores it
		{"fd00::ff", false},
	} {
		t.Run(tc.dst, func(t *testing.T) {
			dst := netip.MustParseAddr(tc.dst)
			pkt := v4
			if dst.Is6() {
				pkt = v6
			}
			pkt = withDst(pkt, dst)
			ours, peer := socketPair(t)
			ep, err := New(Options{FD: ours, MTU: 1500, Drop: drop})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(ep.Close)
			d := newRecordingDispatcher()
			ep.Attach(d)
			writePeer(t, peer, pkt)
			// A packet behind it proves the reader went on.
			writePeer(t, peer, v4)
			if !tc.drop {
				if got := d.next(t); !bytes.Equal(got.data, pkt) {
					t.Fatalf("delivered %x, want %x", got.data, pkt)
				}
			}
			if got := d.next(t); !bytes.Equal(got.data, v4) {
				t.Fatalf("delivered %x, want the packet behind it", got.data)
			}
			d.none(t)
			want := uint64(0)
			if tc.drop {
				want = 1
			}
			if st := ep.Stats(); st.RxNotForwarded != want {
				t.Errorf("RxNotForwarded = %d, want %d (%+v)", st.RxNotForwarded, want, st)
			}
		})
	}
}

func TestZeroDestinationsDropNothing(t *testing.T) {
	var f destFilter
	for _, pkt := range [][]byte{
		withDst(ipv4UDP(nil), netip.MustParseAddr("255.255.255.255")),
		withDst(ipv6UDP(nil), netip.MustParseAddr("ff02::1")),
	} {
		if f.drops(pkt) {
			t.Errorf("the zero filter drops %x", pkt)
		}
	}
}
