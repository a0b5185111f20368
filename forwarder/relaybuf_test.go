package forwarder

import "testing"

// A direction moves to the large buffer only while its reads fill the
// small one, and back as soon as a read would have fit in the small one.
func TestRelayBufSizeFollowsReads(t *testing.T) {
	var b relayBuf
	steps := []struct {
		read int // bytes the last read returned
		want int // size of the next buffer
	}{
		{1000, relayBufSmall},
		{relayBufSmall, relayBufLarge}, // filled the small buffer
		{relayBufLarge, relayBufLarge},
		{relayBufSmall + 1, relayBufLarge}, // still more than the small one holds
		{relayBufSmall - 1, relayBufSmall},
		{0, relayBufSmall}, // EOF or error
	}
	bp := b.get()
	if len(*bp) != relayBufSmall {
		t.Fatalf("first buffer: %d bytes, want %d", len(*bp), relayBufSmall)
	}
	for _, s := range steps {
		b.put(bp, s.read)
		bp = b.get()
		if len(*bp) != s.want {
			t.Fatalf("after a read of %d bytes: next buffer %d bytes, want %d", s.read, len(*bp), s.want)
		}
	}
	b.put(bp, 0)
}
