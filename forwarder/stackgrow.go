package forwarder

// Pre-growing a goroutine's stack.
//
// A goroutine starts with a small stack and the runtime copies it to one
// twice the size each time a call runs out of room. The copy walks every
// frame on the stack to fix its pointers, so it costs in proportion to how
// deep the goroutine is when it runs out: dialing (package net) and
// writing into gVisor's TCP (its send path down to the TUN write) are deep,
// and each connection's dial and relay goroutines paid 2-3 such copies,
// about 5% of tungate's CPU at a high connection rate. growStack asks for
// the room once, near the bottom of the stack, where the copy is a few
// frames; the runtime then sizes the new stack to fit the whole frame in
// one step.

// stackPad is the frame growStack asks for: with the goroutine's few
// frames below it, the runtime rounds the stack up to 16 KiB, the size the
// dial and relay goroutines reach on their own.
const stackPad = 12 << 10

// growStack grows the calling goroutine's stack to 16 KiB, so that the
// deep calls that follow do not grow it piece by piece. Call it where the
// goroutine is about to go deep, not where it parks: an idle goroutine
// should keep the small stack it has.
//
//go:noinline
func growStack() byte {
	var pad [stackPad]byte
	// Written and read through an index the compiler cannot see, so that
	// it keeps the array (and so the frame) on the stack.
	i := stackPadIndex(len(pad))
	pad[i] = 1
	return pad[len(pad)-1-i]
}

// stackPadIndex is kept out of line so the compiler cannot prove which
// byte growStack touches and drop the array.
//
//go:noinline
func stackPadIndex(n int) int { return n - 1 }
