package forwarder

import "testing"

// TestGrowStackStaysOnTheStack checks that the pad that makes the frame
// large is not moved to the heap, where it would cost an allocation of
// 12 KiB per connection and grow nothing.
func TestGrowStackStaysOnTheStack(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { growStack() }); n != 0 {
		t.Fatalf("growStack allocates %v times per call; want 0", n)
	}
}
