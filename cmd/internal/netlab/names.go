package netlab

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
)

// nameCounter makes names unique within this process; the pid in every name
// makes them unique between processes. It is the one piece of package state
// besides the build cache: uniqueness is process-wide by nature.
var nameCounter atomic.Uint64

// maxPrefix keeps names within IFNAMSIZ-1 (15) bytes: 5 for the prefix, up to
// 5 for the pid (4194304 is "2ihc4" in base 36) and the rest for the counter.
const maxPrefix = 5

// UniqueName returns prefix (cut to 5 bytes) followed by this process's pid
// and a counter, both in base 36: unique on the host while the process lives,
// and short enough (at most 15 bytes) for an interface name.
func UniqueName(prefix string) string {
	if len(prefix) > maxPrefix {
		prefix = prefix[:maxPrefix]
	}
	n := nameCounter.Add(1)
	return prefix + strconv.FormatInt(int64(os.Getpid()), 36) + strconv.FormatUint(n, 36)
}

// Subnet is one of 254 test subnets: 10.200.N.0/24 and fd00:7467:N::/64.
type Subnet struct {
	// N is the third octet of the IPv4 subnet and the third group of the
	// IPv6 one, 1 to 254.
	N uint8
}

// NewSubnet reserves a subnet no other netlab user on this host holds, until
// t's cleanup. The reservation is an abstract unix socket named after the
// subnet: the kernel releases it even if the process dies, and it also skips
// subnets already assigned to an interface of this namespace.
func NewSubnet(t testing.TB) Subnet {
	t.Helper()
	start := uint64(os.Getpid()) + nameCounter.Add(1)
	for i := range uint64(254) {
		s := Subnet{N: uint8((start+i)%254) + 1}
		if s.inUse() {
			continue
		}
		l, err := net.Listen("unix", fmt.Sprintf("@netlab-subnet-%d", s.N))
		if err != nil {
			continue
		}
		t.Cleanup(func() { l.Close() })
		return s
	}
	t.Fatal("netlab: all 254 test subnets in 10.200.0.0/16 are in use")
	return Subnet{}
}

// inUse reports whether an interface in this namespace has an address inside s.
func (s Subnet) inUse() bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipnet.IP)
		if ok && (s.Prefix4(0).Contains(ip.Unmap()) || s.Prefix6(0).Contains(ip)) {
			return true
		}
	}
	return false
}

// V4 returns host 10.200.N.host.
func (s Subnet) V4(host uint8) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 200, s.N, host})
}

// V6 returns host fd00:7467:N::host.
func (s Subnet) V6(host uint16) netip.Addr {
	return netip.AddrFrom16([16]byte{0: 0xfd, 2: 0x74, 3: 0x67, 5: s.N, 14: byte(host >> 8), 15: byte(host)})
}

// Addr returns V6(host) if v6, else V4(host): the host's address in the
// family a test runs in.
func (s Subnet) Addr(host uint8, v6 bool) netip.Addr {
	if v6 {
		return s.V6(uint16(host))
	}
	return s.V4(host)
}

// Prefix4 returns V4(host) with the subnet's /24 length, the form an
// interface address takes.
func (s Subnet) Prefix4(host uint8) netip.Prefix {
	return netip.PrefixFrom(s.V4(host), 24)
}

// Prefix6 returns V6(host) with the subnet's /64 length.
func (s Subnet) Prefix6(host uint16) netip.Prefix {
	return netip.PrefixFrom(s.V6(host), 64)
}
