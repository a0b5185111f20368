package route

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// key is an address as a 128-bit number, most significant bit first. An
// IPv4 address fills the top 32 bits of hi.
type key struct{ hi, lo uint64 }

func keyOf(a netip.Addr) key {
	if a.Is4() {
		b := a.As4()
		return key{hi: uint64(binary.BigEndian.Uint32(b[:])) << 32}
	}
	b := a.As16()
	return key{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

// bit returns bit i of k (0 is the most significant).
func (k key) bit(i uint8) int {
	if i < 64 {
		return int(k.hi>>(63-i)) & 1
	}
	return int(k.lo>>(127-i)) & 1
}

// masked keeps the first n bits of k. Go's shifts by 64 or more give 0,
// which makes the edge cases fall out.
func (k key) masked(n uint8) key {
	if n <= 64 {
		return key{hi: k.hi &^ (^uint64(0) >> n)}
	}
	return key{hi: k.hi, lo: k.lo &^ (^uint64(0) >> (n - 64))}
}

// common returns how many leading bits a and b share, at most limit.
func common(a, b key, limit uint8) uint8 {
	n := uint8(bits.LeadingZeros64(a.hi ^ b.hi))
	if n == 64 {
		n += uint8(bits.LeadingZeros64(a.lo ^ b.lo))
	}
	return min(n, limit)
}

// none marks a missing child.
const none = -1

// node is one prefix of a trie: its first bits bits are k. Nodes without
// rules only join two subtrees.
type node struct {
	k     key
	child [2]int32
	// rules[start:end] of the trie are the numbers of the rules whose
	// CIDR is this prefix, ascending.
	start, end uint32
	bits       uint8
}

// trie is a path-compressed binary trie of the CIDRs of one address
// family. Nodes live in one slice and point at each other by index, which
// keeps them compact and the garbage collector's work small.
type trie struct {
	nodes []node
	rules []int32
}

// newTrie makes an empty trie, a root for the zero-length prefix, with
// room for nodes nodes and rules rule numbers.
func newTrie(nodes, rules int) trie {
	t := trie{nodes: make([]node, 1, 1+nodes), rules: make([]int32, 0, rules)}
	t.nodes[0].child = [2]int32{none, none}
	return t
}

// add records that the rules numbered idx (ascending) have the CIDR of
// k's first n bits. Each prefix is added once.
func (t *trie) add(k key, n uint8, idx []int32) {
	k = k.masked(n)
	start := uint32(len(t.rules))
	t.rules = append(t.rules, idx...)
	leaf := func() int32 {
		t.nodes = append(t.nodes, node{k: k, bits: n, child: [2]int32{none, none}, start: start, end: uint32(len(t.rules))})
		return int32(len(t.nodes) - 1)
	}
	cur := int32(0)
	for {
		// Here nodes[cur] is a prefix of k, no longer than n.
		if t.nodes[cur].bits == n {
			t.nodes[cur].start, t.nodes[cur].end = start, uint32(len(t.rules))
			return
		}
		b := k.bit(t.nodes[cur].bits)
		next := t.nodes[cur].child[b]
		if next == none {
			l := leaf()
			t.nodes[cur].child[b] = l
			return
		}
		c := t.nodes[next]
		shared := common(c.k, k, min(c.bits, n))
		switch {
		case shared == c.bits:
			cur = next
			continue
		case shared == n:
			// k is a prefix of next: it goes in between.
			l := leaf()
			t.nodes[l].child[c.k.bit(n)] = next
			t.nodes[cur].child[b] = l
		default:
			// They part after shared bits: a joining node holds both.
			l := leaf()
			t.nodes = append(t.nodes, node{k: k.masked(shared), bits: shared, child: [2]int32{none, none}})
			j := int32(len(t.nodes) - 1)
			t.nodes[j].child[k.bit(shared)] = l
			t.nodes[j].child[c.k.bit(shared)] = next
			t.nodes[cur].child[b] = j
		}
		return
	}
}

// lookup walks the prefixes of k (an address of maxBits bits) from the
// shortest, and returns the smallest number below best of a rule found
// on the way that p matches, or best.
func (t *trie) lookup(k key, maxBits uint8, best int32, rules []*Rule, p *probe) int32 {
	cur := int32(0)
	for {
		n := &t.nodes[cur]
		for _, i := range t.rules[n.start:n.end] {
			if i >= best {
				break
			}
			if rules[i].matches(p) {
				best = i
				break
			}
		}
		if n.bits >= maxBits {
			return best
		}
		next := n.child[k.bit(n.bits)]
		if next == none {
			return best
		}
		c := &t.nodes[next]
		if k.masked(c.bits) != c.k {
			return best
		}
		cur = next
	}
}
