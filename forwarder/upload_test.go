package forwarder_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"
)

// TestTCPUploadToStalledServer sends from the app to a server that reads
// nothing for a while, so that the host socket fills and the relay must
// wait for room with the data still in the stack, then drains it: every
// byte must arrive once and in order.
func TestTCPUploadToStalledServer(t *testing.T) {
	got := make(chan []byte, 1)
	addr := listen(t, func(c *net.TCPConn) {
		time.Sleep(300 * time.Millisecond)
		data, _ := io.ReadAll(c)
		got <- data
	})
	app := newPair(t, loopbackTo(addr))
	c := dialApp(t, app, 80)
	want := make([]byte, 16<<20)
	rand.Read(want)
	if _, err := c.Write(want); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.CloseWrite()
	select {
	case data := <-got:
		if !bytes.Equal(data, want) {
			t.Fatalf("server got %d bytes that differ from the %d sent", len(data), len(want))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not get the upload within 10s")
	}
}
