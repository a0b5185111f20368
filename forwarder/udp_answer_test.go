package forwarder

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/dns"
	"github.com/tungate/tungate/forwarder/route"
)

// echoAnswerer answers every query with the query itself.
type echoAnswerer struct{}

func (echoAnswerer) Answer(_ context.Context, _ string, q []byte) ([]byte, error) {
	return append([]byte("answer to "), q...), nil
}

// recordingApp records what the forwarder delivers to apps.
type recordingApp struct{ got chan [2]string }

func (a *recordingApp) SendTo(src, dst netip.AddrPort, p []byte) error {
	a.got <- [2]string{src.String(), string(p)}
	return nil
}

func (a *recordingApp) PortUnreachable(netip.AddrPort, netip.AddrPort) error { return nil }

// TestUDPAnsweredDNSSharesOneConversation: DNS that tungate answers
// in-process, sent from one app port to many addresses (fake DNS answers
// port 53 at every address), costs the session one mapping, whose answers
// come from the address each query went to.
func TestUDPAnsweredDNSSharesOneConversation(t *testing.T) {
	res, err := dns.New(dns.Options{Answerer: echoAnswerer{}, Inline: true})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	app := &recordingApp{got: make(chan [2]string, 16)}
	f, err := New(Options{Router: &fixedRouter{d: route.Decision{Kind: route.Answer, Server: res}}, UDPApp: app})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src := netip.MustParseAddrPort("10.0.0.2:4000")
	const n = 50
	expect := func() {
		t.Helper()
		select {
		case got := <-app.got:
			if got[1] != "answer to "+got[0] {
				t.Fatalf("answer %q from %s; want the answer to the query sent there", got[1], got[0])
			}
		case <-time.After(5 * time.Second):
			t.Fatal("an answer is missing")
		}
	}
	// The first query waits for the conversation to open (the table
	// holds a few datagrams meanwhile); the others find it open.
	for i := range n {
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 53)
		if !f.HandleUDPDatagram(src, dst, []byte(dst.String())) {
			t.Fatalf("datagram to %v refused", dst)
		}
		if i == 0 {
			expect()
		}
	}
	for range n - 1 {
		expect()
	}
	if st := f.UDPStats(); st.Sessions != 1 || st.Mappings != 1 {
		t.Fatalf("UDP stats %+v; want one session with one mapping for %d destinations", st, n)
	}
}
