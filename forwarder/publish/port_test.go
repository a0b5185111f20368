package publish

import (
	"net/netip"
	"testing"
)

func TestParsePort(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Port
		err  bool
	}{
		{in: "8080:80", want: Port{Network: "tcp", Host: netip.AddrPortFrom(netip.Addr{}, 8080), Target: 80}},
		{in: "5353:53/udp", want: Port{Network: "udp", Host: netip.AddrPortFrom(netip.Addr{}, 5353), Target: 53}},
		{in: "127.0.0.1:8080:80/tcp", want: Port{Network: "tcp", Host: netip.MustParseAddrPort("127.0.0.1:8080"), Target: 80}},
		{in: "[::1]:8080:80", want: Port{Network: "tcp", Host: netip.MustParseAddrPort("[::1]:8080"), Target: 80}},
		{in: "[::ffff:10.0.0.1]:1:2", want: Port{Network: "tcp", Host: netip.MustParseAddrPort("10.0.0.1:1"), Target: 2}},
		{in: "80", err: true},
		{in: "8080:80/sctp", err: true},
		{in: "0:80", err: true},
		{in: "8080:0", err: true},
		{in: "8080:65536", err: true},
		{in: "localhost:8080:80", err: true},
		{in: "::1:8080:80", err: true},
		{in: "[fe80::1%eth0]:8080:80", err: true},
		{in: ":80", err: true},
		{in: "", err: true},
	} {
		got, err := ParsePort(tc.in)
		switch {
		case tc.err && err == nil:
			t.Errorf("ParsePort(%q) = %v, want an error", tc.in, got)
		case !tc.err && err != nil:
			t.Errorf("ParsePort(%q): %v", tc.in, err)
		case !tc.err && got != tc.want:
			t.Errorf("ParsePort(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"8080:80", "[::1]:1:2/udp", "1.2.3.4:5:6/tcp", "::::", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePort(s)
		if err != nil {
			return
		}
		if p.Host.Port() == 0 || p.Target == 0 || (p.Network != "tcp" && p.Network != "udp") {
			t.Fatalf("ParsePort(%q) = %+v", s, p)
		}
		again, err := ParsePort(p.String())
		if err != nil || again != p {
			t.Fatalf("round trip of %q via %q: %+v, %v", s, p.String(), again, err)
		}
	})
}
