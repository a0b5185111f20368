package fakedns

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/proxy"
)

// recorder is a next dialer that remembers what it was asked to dial.
type recorder struct{ dials []string }

var errRecorded = errors.New("recorded")

func (r *recorder) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	r.dials = append(r.dials, network+" "+address)
	return nil, errRecorded
}

func (r *recorder) DialPacket(ctx context.Context, network, address string) (net.Conn, error) {
	r.dials = append(r.dials, "packet "+network+" "+address)
	return nil, errRecorded
}

func TestDialerRoutes(t *testing.T) {
	res := mustNew(t, Options{})
	next := &recorder{}
	d := &Dialer{Resolver: res, Next: next}
	v4, v6 := res.Lookup("web.test")
	ctx := context.Background()

	d.DialContext(ctx, "tcp4", netip.AddrPortFrom(v4, 80).String())
	d.DialContext(ctx, "tcp6", netip.AddrPortFrom(v6, 443).String())
	d.DialPacket(ctx, "udp4", netip.AddrPortFrom(v4, 443).String())
	d.DialContext(ctx, "tcp4", "10.0.0.1:80")
	want := []string{"tcp web.test:80", "tcp web.test:443", "packet udp web.test:443", "tcp4 10.0.0.1:80"}
	if !slices.Equal(next.dials, want) {
		t.Fatalf("next dialed %q, want %q", next.dials, want)
	}

	_, err := d.DialContext(ctx, "tcp4", "198.19.3.3:80")
	if !errors.Is(err, ErrUnknownAddress) {
		t.Fatalf("unknown fake address: %v", err)
	}
	for _, dst := range []string{"10.0.0.1:53", "[2001:db8::1]:53", netip.AddrPortFrom(v4, 53).String()} {
		c, err := d.DialContext(ctx, "tcp", dst)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		c, err = d.DialPacket(ctx, "udp", dst)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if len(next.dials) != len(want) {
		t.Fatalf("DNS flows reached the next dialer: %q", next.dials[len(want):])
	}

	tcpOnly := &Dialer{Resolver: res, Next: struct{ proxy.Dialer }{next}}
	if _, err := tcpOnly.DialPacket(ctx, "udp4", "10.0.0.1:443"); !errors.Is(err, proxy.ErrUDPUnsupported) {
		t.Fatalf("UDP through a TCP-only dialer: %v", err)
	}
}

// Go's own resolver, speaking DNS over TCP to the in-process server, gets
// addresses that map back to the name.
func TestGoResolverOverStream(t *testing.T) {
	res := mustNew(t, Options{})
	d := &Dialer{Resolver: res, Next: &recorder{}}
	gr := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", "192.0.2.53:53")
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := gr.LookupNetIP(ctx, "ip", "svc.corp.example")
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 2 {
		t.Fatalf("got %v, want one IPv4 and one IPv6 address", addrs)
	}
	for _, a := range addrs {
		if name, ok := res.Name(a); !ok || name != "svc.corp.example" {
			t.Errorf("%s names %q", a, name)
		}
	}
}

func TestStreamFramingAndHalfClose(t *testing.T) {
	res := mustNew(t, Options{})
	c := newLocalConn(res, nil, true)
	var msgs []byte
	for i, name := range []string{"a.test", "b.test"} {
		q := query(uint16(i), name, typeA)
		msgs = binary.BigEndian.AppendUint16(msgs, uint16(len(q)))
		msgs = append(msgs, q...)
	}
	// One byte at a time: queries split across writes still get answered.
	for i := range msgs {
		if _, err := c.Write(msgs[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	c.CloseWrite()
	if _, err := c.Write([]byte{0}); err == nil {
		t.Fatal("Write after CloseWrite succeeded")
	}
	all, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		n := int(binary.BigEndian.Uint16(all))
		p := parseReply(t, all[2:2+n])
		if p.id != uint16(i) || p.an != 1 {
			t.Fatalf("answer %d: %+v", i, p)
		}
		all = all[2+n:]
	}
	if len(all) != 0 {
		t.Fatalf("%d bytes left over", len(all))
	}
}

func TestDatagrams(t *testing.T) {
	res := mustNew(t, Options{})
	c := newLocalConn(res, nil, false)
	c.Write([]byte("junk"))
	c.Write(query(9, "x.test", typeAAAA))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if p := parseReply(t, buf[:n]); p.id != 9 || p.an != 1 {
		t.Fatalf("answer %+v", p)
	}
	for range maxQueuedDatagrams + 10 {
		c.Write(query(1, "x.test", typeA))
	}
	if len(c.datagrams) != maxQueuedDatagrams {
		t.Fatalf("%d answers queued", len(c.datagrams))
	}
	done := make(chan error)
	go func() {
		for {
			if _, err := c.Read(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
}

func TestStreamBoundsUnread(t *testing.T) {
	res := mustNew(t, Options{})
	c := newLocalConn(res, nil, true)
	q := query(1, "a.test", typeA)
	frame := append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)
	var err error
	for i := 0; err == nil && i < 10000; i++ {
		_, err = c.Write(frame)
	}
	if !errors.Is(err, errTooMuchUnread) {
		t.Fatalf("client that never reads: %v", err)
	}
}
