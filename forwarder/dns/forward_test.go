package dns

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/proxy"
)

// fakeServer is a DNS server on loopback that answers response(q, tag),
// after first sending a datagram with the wrong ID over UDP.
type fakeServer struct {
	udp net.PacketConn
	tcp net.Listener
}

func startFakeServer(t *testing.T, tag string) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		pc.Close()
		t.Skipf("TCP port %d is taken: %v", port, err)
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := buf[:n]
			stray := response(q, "stray")
			stray[0] ^= 0xff
			pc.WriteTo(stray, from)
			pc.WriteTo(response(q, tag), from)
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var hdr [2]byte
				io.ReadFull(c, hdr[:])
				q := make([]byte, binary.BigEndian.Uint16(hdr[:]))
				io.ReadFull(c, q)
				r := response(q, tag+"/tcp")
				c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(r))), r...))
			}()
		}
	}()
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// deadPort returns a loopback UDP and TCP port nothing listens on.
func deadPort(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(pc.LocalAddr().String())
	pc.Close()
	return ap
}

func TestForwardFallsBackAndSkipsStrays(t *testing.T) {
	good := startFakeServer(t, "good")
	f := &Forward{Servers: []netip.AddrPort{deadPort(t), good}, Dialer: &proxy.Direct{}, Timeout: 2 * time.Second}
	q := query(0x1234, "web.test")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	ans, err := f.Answer(ctx, "udp", q)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ans, response(q, "good")) {
		t.Errorf("udp answer % x", ans)
	}
	// The dead server refuses at once (ICMP port unreachable): no timeout.
	if d := time.Since(start); d > time.Second {
		t.Errorf("fallback took %v", d)
	}
	ans, err = f.Answer(ctx, "tcp", q)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ans, response(q, "good/tcp")) {
		t.Errorf("tcp answer % x", ans)
	}
}

func TestForwardErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := (&Forward{Dialer: &proxy.Direct{}}).Answer(ctx, "udp", query(1, "a")); err != ErrNoServers {
		t.Errorf("no servers: %v", err)
	}
	f := &Forward{Servers: []netip.AddrPort{deadPort(t)}, Dialer: &proxy.Direct{}}
	if _, err := f.Answer(ctx, "udp", []byte{1, 2}); err == nil {
		t.Error("a 2-byte query was forwarded")
	}
	if _, err := f.Answer(ctx, "udp", query(1, "a")); err == nil {
		t.Error("dead server answered")
	}
}
