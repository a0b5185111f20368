package dns

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// query builds a DNS query for name, type A.
func query(id uint16, name string) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD, one question
	for _, l := range strings.Split(name, ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0, 0, 1, 0, 1)
}

// response turns q into a response carrying tag as extra bytes, so tests
// can tell who answered.
func response(q []byte, tag string) []byte {
	r := append([]byte(nil), q...)
	r[2] |= flagQR
	return append(r, tag...)
}

func TestParseResolvConf(t *testing.T) {
	text := `# comment
; other comment
nameserver 127.0.0.53
nameserver   2001:db8::53
nameserver fe80::1%eth0
nameserver not-an-ip
nameserver
search example.com corp.example
options edns0 trust-ad
domain example.com
sortlist 10.0.0.0
`
	rc, err := ParseResolvConf(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.53:53"),
		netip.MustParseAddrPort("[2001:db8::53]:53"),
		netip.AddrPortFrom(netip.MustParseAddr("fe80::1%eth0"), 53),
	}
	if !slices.Equal(rc.Servers, want) {
		t.Errorf("servers = %v, want %v", rc.Servers, want)
	}
	wantKeep := []string{"search example.com corp.example", "options edns0 trust-ad", "domain example.com"}
	if !slices.Equal(rc.Keep, wantKeep) {
		t.Errorf("keep = %q, want %q", rc.Keep, wantKeep)
	}
}

func TestParseServer(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"192.0.2.53", "192.0.2.53:53"},
		{"192.0.2.53:5353", "192.0.2.53:5353"},
		{"2001:db8::53", "[2001:db8::53]:53"},
		{"[2001:db8::53]:5353", "[2001:db8::53]:5353"},
		{"::ffff:192.0.2.1", "192.0.2.1:53"},
		{"example.com", ""},
		{"192.0.2.53:0", ""},
		{"192.0.2.53:99999", ""},
		{"", ""},
	} {
		got, err := ParseServer(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParseServer(%q) = %v, want an error", tc.in, got)
		case tc.want != "" && (err != nil || got.String() != tc.want):
			t.Errorf("ParseServer(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestServerFailure(t *testing.T) {
	q := query(0xbeef, "web.test")
	r := serverFailure(q)
	if len(r) != len(q) {
		t.Fatalf("SERVFAIL is %d bytes, want the header and question (%d)", len(r), len(q))
	}
	if !isResponse(r, 0xbeef) || r[3]&0x0f != rcodeServFail || r[2]&0x01 == 0 {
		t.Errorf("header = % x: want QR, RD and RCODE 2", r[:4])
	}
	if !bytes.Equal(r[headerLen:], q[headerLen:]) {
		t.Error("question not echoed")
	}
	if serverFailure(response(q, "")) != nil {
		t.Error("answered a response")
	}
	if serverFailure(q[:5]) != nil {
		t.Error("answered a fragment")
	}
}

func FuzzServerFailure(f *testing.F) {
	f.Add(query(1, "a.b"))
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, q []byte) {
		r := serverFailure(q)
		if r == nil {
			return
		}
		id, _ := idOf(q)
		if !isResponse(r, id) || len(r) > len(q) {
			t.Fatalf("bad SERVFAIL % x for % x", r, q)
		}
	})
}

// fakeAnswerer answers every query with response(q, network), or fails; a
// message that is not a query gets no answer.
type fakeAnswerer struct{ fail bool }

func (a *fakeAnswerer) Answer(ctx context.Context, network string, q []byte) ([]byte, error) {
	switch {
	case a.fail:
		return nil, errors.New("upstream down")
	case len(q) < headerLen || q[2]&flagQR != 0:
		return nil, nil
	}
	return response(q, network), nil
}

func newTestResolver(t *testing.T, a Answerer) *Resolver {
	t.Helper()
	return newResolverWith(t, Options{Answerer: a})
}

func newResolverWith(t *testing.T, opts Options) *Resolver {
	t.Helper()
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestResolverUDP(t *testing.T) {
	r := newTestResolver(t, &fakeAnswerer{})
	c, err := r.Open(netip.MustParseAddrPort("[fd74:6761:7465::2]:53"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for id := uint16(1); id <= 3; id++ {
		q := query(id, "web.test")
		if _, err := c.Write(q); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if want := response(q, "udp"); !bytes.Equal(buf[:n], want) {
			t.Fatalf("answer % x, want % x", buf[:n], want)
		}
	}
}

func TestResolverTCP(t *testing.T) {
	r := newTestResolver(t, &fakeAnswerer{})
	c, err := r.Open(netip.MustParseAddrPort("198.18.0.2:53"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Flows have no deadlines: a stuck read fails when this closes c.
	defer time.AfterFunc(5*time.Second, func() { c.Close() }).Stop()
	q := query(7, "web.test")
	// Two queries in one write: the server must frame them.
	msg := binary.BigEndian.AppendUint16(nil, uint16(len(q)))
	msg = append(msg, q...)
	if _, err := c.Write(append(msg, msg...)); err != nil {
		t.Fatal(err)
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	for i := 0; i < 2; i++ {
		var hdr [2]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		ans := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(c, ans); err != nil {
			t.Fatal(err)
		}
		if want := response(q, "tcp"); !bytes.Equal(ans, want) {
			t.Fatalf("answer % x, want % x", ans, want)
		}
	}
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after the last answer: %v, want EOF", err)
	}
}

func TestResolverServFailOnError(t *testing.T) {
	r := newTestResolver(t, &fakeAnswerer{fail: true})
	c, err := r.Open(netip.MustParseAddrPort("198.18.0.2:53"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(query(9, "web.test"))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !isResponse(buf[:n], 9) || buf[3]&0x0f != rcodeServFail {
		t.Errorf("answer % x, want SERVFAIL", buf[:n])
	}
}

func TestResolverCloseEndsConversations(t *testing.T) {
	r := newTestResolver(t, &fakeAnswerer{})
	c, err := r.Open(netip.MustParseAddrPort("198.18.0.2:53"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan struct{})
	go func() {
		r.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return with a TCP conversation open")
	}
	if _, err := readWithin(t, c, make([]byte, 1)); err != io.EOF {
		t.Errorf("read after Close: %v, want EOF", err)
	}
}
