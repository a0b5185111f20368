package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/proxy"
)

// answerWith answers q (one question) with a CNAME to the question's name
// (compressed) and then one record of type qt per address of the right
// length; rcode is the header's.
func answerWith(q []byte, rcode byte, addrs ...netip.Addr) []byte {
	end, _ := questionEnd(q, headerLen)
	qt := binary.BigEndian.Uint16(q[end-4:])
	a := append([]byte(nil), q[:end]...)
	a[2] |= flagQR
	a[3] = flagRA | rcode
	rr := func(typ uint16, data []byte) {
		a = append(a, 0xc0, headerLen) // the question's name
		a = binary.BigEndian.AppendUint16(a, typ)
		a = binary.BigEndian.AppendUint16(a, classIN)
		a = binary.BigEndian.AppendUint32(a, 5)
		a = binary.BigEndian.AppendUint16(a, uint16(len(data)))
		a = append(a, data...)
	}
	n := uint16(1)
	rr(5, []byte{0xc0, headerLen}) // a CNAME, skipped
	for _, ad := range addrs {
		if (qt == typeA) == ad.Is4() {
			rr(qt, ad.AsSlice())
			n++
		}
	}
	binary.BigEndian.PutUint16(a[6:], n)
	return a
}

func TestBuildQueryParseAddrs(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.9.8.7"), netip.MustParseAddr("fd00::7")
	for _, qt := range []uint16{typeA, typeAAAA} {
		q, err := buildQuery(77, "udp.example.", qt)
		if err != nil {
			t.Fatal(err)
		}
		if end, ok := questionEnd(q, headerLen); !ok || end != len(q) {
			t.Fatalf("query %x is not one question", q)
		}
		got, err := parseAddrs(answerWith(q, 0, v4, v6), 77, qt)
		want := v4
		if qt == typeAAAA {
			want = v6
		}
		if err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("type %d: %v, %v; want [%s]", qt, got, err, want)
		}
		if _, err := parseAddrs(answerWith(q, 0, v4), 78, qt); err == nil {
			t.Errorf("an answer to another ID was taken")
		}
		if _, err := parseAddrs(answerWith(q, 3), 77, qt); err == nil {
			t.Errorf("NXDOMAIN was taken as an answer")
		}
	}
	for _, bad := range []string{"", ".", "a..b", string(make([]byte, 64)) + ".example"} {
		if _, err := buildQuery(1, bad, typeA); err == nil {
			t.Errorf("buildQuery(%q) did not fail", bad)
		}
	}
}

func FuzzParseAddrs(f *testing.F) {
	q, _ := buildQuery(1, "a.example", typeA)
	f.Add(answerWith(q, 0, netip.MustParseAddr("10.0.0.1")))
	f.Add(q)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseAddrs(b, 1, typeA)
		_, _ = parseAddrs(b, 1, typeAAAA)
	})
}

// TestLookupResolveUDP asks a server on loopback in the family the network
// names: udp4 gets the A record, udp6 the AAAA one, and a name without
// records of that family fails with ErrNoAddress.
func TestLookupResolveUDP(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.9.8.7"), netip.MustParseAddr("fd00::7")
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			addrs := []netip.Addr{v4, v6}
			if n > headerLen+1 && buf[headerLen+1] == 'v' { // "v4only.example"
				addrs = addrs[:1]
			}
			pc.WriteTo(answerWith(buf[:n], 0, addrs...), from)
		}
	}()
	l := &Lookup{Forward: &Forward{Servers: []netip.AddrPort{pc.LocalAddr().(*net.UDPAddr).AddrPort()}, Dialer: &proxy.Direct{}}, Network: "udp"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for network, want := range map[string]netip.Addr{"udp4": v4, "udp6": v6, "udp": v4} {
		if got, err := l.ResolveUDP(ctx, network, "udp.example"); err != nil || got != want {
			t.Errorf("ResolveUDP(%s) = %v, %v; want %s", network, got, err, want)
		}
	}
	if _, err := l.ResolveUDP(ctx, "udp6", "v4only.example"); !errors.Is(err, ErrNoAddress) {
		t.Errorf("ResolveUDP(udp6) of a name with an A record only: %v, want ErrNoAddress", err)
	}
}
