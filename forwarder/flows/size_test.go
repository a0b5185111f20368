package flows

import (
	"testing"
	"unsafe"
)

// Idle flows are many: a Flow that grows past 288 bytes goes to the
// allocator's next size class, 320, and costs 32 bytes more per flow.
func TestFlowSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Flow{}); n > 288 {
		t.Errorf("a Flow is %d bytes; want at most 288 (the size class of 320 begins above)", n)
	}
}
