package fakedns

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

// query builds a DNS query for name (dot-separated, or raw labels when
// name is given as wire bytes by the caller).
func query(id uint16, name string, qtype uint16) []byte {
	q := []byte{byte(id >> 8), byte(id), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	if name != "" {
		for _, l := range strings.Split(name, ".") {
			q = append(q, byte(len(l)))
			q = append(q, l...)
		}
	}
	q = append(q, 0)
	q = binary.BigEndian.AppendUint16(q, qtype)
	return binary.BigEndian.AppendUint16(q, classIN)
}

type parsed struct {
	id             uint16
	rcode          byte
	qd, an         uint16
	rtype          uint16
	ttl            uint32
	rdata          []byte
	qr, rd, ra, tc bool
}

func parseReply(t *testing.T, b []byte) parsed {
	t.Helper()
	if len(b) < headerLen {
		t.Fatalf("reply of %d bytes", len(b))
	}
	p := parsed{
		id: binary.BigEndian.Uint16(b), rcode: b[3] & 0xf,
		qd: binary.BigEndian.Uint16(b[4:]), an: binary.BigEndian.Uint16(b[6:]),
		qr: b[2]&0x80 != 0, tc: b[2]&0x02 != 0, rd: b[2]&0x01 != 0, ra: b[3]&0x80 != 0,
	}
	off := headerLen
	if p.qd == 1 {
		_, _, _, end, ok := parseQuestion(b, off)
		if !ok {
			t.Fatalf("reply's question does not parse: % x", b)
		}
		off = end
	}
	if p.an == 1 {
		rr := b[off:]
		if len(rr) < 12 || rr[0] != 0xc0 || rr[1] != headerLen {
			t.Fatalf("answer record % x", rr)
		}
		p.rtype = binary.BigEndian.Uint16(rr[2:])
		p.ttl = binary.BigEndian.Uint32(rr[6:])
		n := int(binary.BigEndian.Uint16(rr[10:]))
		if len(rr) != 12+n {
			t.Fatalf("rdata length %d, record % x", n, rr)
		}
		p.rdata = rr[12:]
	}
	return p
}

func TestAnswers(t *testing.T) {
	r := mustNew(t, Options{})
	a := parseReply(t, r.answer(query(0x1234, "Web.Test.Internal", typeA)))
	if a.id != 0x1234 || !a.qr || !a.rd || !a.ra || a.tc || a.rcode != 0 || a.qd != 1 || a.an != 1 || a.rtype != typeA || a.ttl != 5 {
		t.Fatalf("A answer %+v", a)
	}
	v4, ok := netip.AddrFromSlice(a.rdata)
	if name, _ := r.Name(v4); !ok || name != "web.test.internal" {
		t.Fatalf("A answer %s names %q", v4, name)
	}
	aaaa := parseReply(t, r.answer(query(7, "web.test.internal", typeAAAA)))
	v6, _ := netip.AddrFromSlice(aaaa.rdata)
	if aaaa.rtype != typeAAAA || v6 != netip.MustParseAddr("fd74:6761:7465:fa4e::1") {
		t.Fatalf("AAAA answer %+v (%s)", aaaa, v6)
	}

	cases := []struct {
		what  string
		q     []byte
		rcode byte
		qd    uint16
	}{
		{"MX", query(1, "web.test.internal", 15), 0, 1},
		{"HTTPS", query(1, "web.test.internal", 65), 0, 1},
		{"root", query(1, "", typeA), 0, 1},
		{"bad characters", query(1, "a b.test", typeA), rcodeNXDomain, 1},
		{"localhost", query(1, "localhost", typeA), rcodeNXDomain, 1},
		{"sub.localhost", query(1, "x.localhost", typeAAAA), rcodeNXDomain, 1},
		{"class CH", append(query(1, "version.bind", 16)[:len(query(1, "version.bind", 16))-2], 0, 3), rcodeNotImp, 1},
		{"opcode STATUS", func() []byte { q := query(1, "a.test", typeA); q[2] |= 2 << 3; return q }(), rcodeNotImp, 1},
		{"two questions", func() []byte { q := query(1, "a.test", typeA); q[5] = 2; return q }(), rcodeFormErr, 0},
		{"truncated", query(1, "a.test", typeA)[:15], rcodeFormErr, 0},
		{"pointer", append([]byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12}, 0, 1, 0, 1), rcodeFormErr, 0},
		{"long label", query(1, strings.Repeat("a", 64)+".test", typeA), rcodeFormErr, 0},
		{"long name", query(1, strings.Repeat(strings.Repeat("a", 63)+".", 4)+"b", typeA), rcodeFormErr, 0},
	}
	for _, tc := range cases {
		p := parseReply(t, r.answer(tc.q))
		if p.rcode != tc.rcode || p.an != 0 || p.qd != tc.qd || !p.qr {
			t.Errorf("%s: got %+v, want rcode %d, %d questions, no answer", tc.what, p, tc.rcode, tc.qd)
		}
	}
	for _, drop := range [][]byte{nil, {1, 2, 3}, func() []byte { q := query(1, "a.test", typeA); q[2] |= 0x80; return q }()} {
		if ans := r.answer(drop); ans != nil {
			t.Errorf("answered % x with % x", drop, ans)
		}
	}
}

// A name of 253 characters is the longest there is; it must still be
// answered (and fit a SOCKS5 request, whose limit is 255).
func TestLongestName(t *testing.T) {
	name := strings.Repeat(strings.Repeat("a", 63)+".", 4)[:253]
	r := mustNew(t, Options{})
	p := parseReply(t, r.answer(query(1, name, typeA)))
	if p.an != 1 {
		t.Fatalf("no answer for a %d-character name: %+v", len(name), p)
	}
}

func FuzzAnswer(f *testing.F) {
	f.Add(query(1, "web.test.internal", typeA))
	f.Add(query(2, "x.y", typeAAAA))
	f.Add(query(3, "", 15))
	f.Add([]byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, q []byte) {
		r, err := New(Options{Size: 4})
		if err != nil {
			t.Fatal(err)
		}
		ans := r.answer(q)
		if ans == nil {
			return
		}
		if len(ans) < headerLen || ans[0] != q[0] || ans[1] != q[1] || ans[2]&0x80 == 0 {
			t.Fatalf("reply % x to % x", ans, q)
		}
		if len(ans) > 512 {
			t.Fatalf("reply of %d bytes would not fit a plain UDP answer", len(ans))
		}
		if binary.BigEndian.Uint16(ans[6:]) == 1 {
			// Whatever got an address maps back to a valid host name.
			for _, name := range r.names[1:] {
				if _, ok := hostName(strings.Split(name, ".")); !ok || len(name) > 253 {
					t.Fatalf("table holds %q", name)
				}
			}
		}
	})
}
