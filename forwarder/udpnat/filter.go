package udpnat

import "fmt"

// Filter says which sources may send to a session's mapping (RFC 4787
// §5). Every mode delivers a datagram from the source it came from.
type Filter int

const (
	// FilterEndpoint admits datagrams from any address and port once the
	// app has sent from its port ("full cone"): what peer-to-peer apps,
	// WebRTC and game consoles need. Anyone who learns the mapping can
	// reach the app's port while the session lives.
	FilterEndpoint Filter = iota
	// FilterAddress admits datagrams from any port of an address the app
	// has sent to ("restricted cone").
	FilterAddress
	// FilterPort admits datagrams only from an address and port the app
	// has sent to ("port restricted cone"), as a symmetric NAT does.
	FilterPort
)

var filterNames = [...]string{FilterEndpoint: "endpoint", FilterAddress: "address", FilterPort: "port"}

// String returns the flag form of f.
func (f Filter) String() string {
	if f < 0 || int(f) >= len(filterNames) {
		return fmt.Sprintf("Filter(%d)", int(f))
	}
	return filterNames[f]
}

// ParseFilter reads the flag form: endpoint, address or port.
func ParseFilter(s string) (Filter, error) {
	for f, name := range filterNames {
		if s == name {
			return Filter(f), nil
		}
	}
	return 0, fmt.Errorf("udp filter %q: want endpoint, address or port", s)
}
