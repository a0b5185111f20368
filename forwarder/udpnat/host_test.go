package udpnat

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/proxy"
)

// reflector answers each datagram with the address and port it came from.
func reflector(t *testing.T, addr string) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Skipf("no reflector on %s: %v", addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(from.String()), from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// hostTable routes everything through the host's own sockets.
func hostTable(t *testing.T, opts Options) (*Table, *fakeApp) {
	t.Helper()
	return newTestTable(t, opts, &proxy.Direct{}, nil)
}

func TestHostSocketMappingAndFiltering(t *testing.T) {
	r1, r2 := reflector(t, "127.0.0.1:0"), reflector(t, "127.0.0.2:0")
	for _, filter := range []Filter{FilterEndpoint, FilterAddress, FilterPort} {
		t.Run(filter.String(), func(t *testing.T) {
			tab, app := hostTable(t, Options{Filter: filter})
			app1 := ap("10.0.0.2:4000")
			var mapped []string
			for _, r := range []netip.AddrPort{r1, r2} {
				if err := tab.Send(app1, r, []byte("who am i")); err != nil {
					t.Fatal(err)
				}
				mapped = append(mapped, replyFrom(t, app, r))
			}
			if mapped[0] != mapped[1] {
				t.Fatalf("reflectors saw %s and %s; want one mapping", mapped[0], mapped[1])
			}
			// A third address that the app never contacted.
			stranger, err := net.ListenPacket("udp", "127.0.0.3:0")
			if err != nil {
				t.Skip(err)
			}
			defer stranger.Close()
			to, _ := net.ResolveUDPAddr("udp", mapped[0])
			stranger.WriteTo([]byte("unsolicited"), to)
			from := stranger.LocalAddr().(*net.UDPAddr).AddrPort()
			if filter == FilterEndpoint {
				app.expect(t, delivery{from, app1, "unsolicited"})
			} else {
				app.expectNone(t)
			}
		})
	}
}

func TestHostPortUnreachableReachesTheAppForThatDestination(t *testing.T) {
	tab, app := hostTable(t, Options{})
	// A port with nobody listening: bind one, note it, close it.
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	closed := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	live := reflector(t, "127.0.0.1:0")
	tab.Send(app1, live, []byte("x"))
	replyFrom(t, app, live)
	tab.Send(app1, closed, []byte("x"))
	select {
	case d := <-app.unreachable:
		if d.src != closed || d.dst != app1 {
			t.Fatalf("port unreachable %v -> %v; want %v -> %v", d.src, d.dst, closed, app1)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no port unreachable")
	}
	// The session goes on for the live destination.
	tab.Send(app1, live, []byte("again"))
	replyFrom(t, app, live)
}

// replyFrom waits for a delivery from src and returns its payload.
func replyFrom(t *testing.T, app *fakeApp, src netip.AddrPort) string {
	t.Helper()
	select {
	case d := <-app.got:
		if d.src != src {
			t.Fatalf("reply from %v; want %v", d.src, src)
		}
		return d.data
	case <-time.After(5 * time.Second):
		t.Fatalf("no reply from %v", src)
		return ""
	}
}
