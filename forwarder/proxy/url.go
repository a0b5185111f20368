package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Kind is the protocol of one hop.
type Kind int

// The kinds of hop ParseURL accepts.
const (
	KindDirect  Kind = iota // direct://: the host's own sockets
	KindSOCKS5              // socks5:// and socks5h://
	KindSOCKS4              // socks4://
	KindSOCKS4a             // socks4a://
	KindHTTP                // http:// (CONNECT)
)

// String returns the URL scheme of the kind.
func (k Kind) String() string {
	switch k {
	case KindDirect:
		return "direct"
	case KindSOCKS5:
		return "socks5"
	case KindSOCKS4:
		return "socks4"
	case KindSOCKS4a:
		return "socks4a"
	case KindHTTP:
		return "http"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// usage is the accepted URL form, quoted in parse errors.
func (k Kind) usage() string {
	switch k {
	case KindDirect:
		return "direct://"
	case KindSOCKS4, KindSOCKS4a:
		return k.String() + "://[USER@]HOST:PORT"
	}
	return k.String() + "://[USER:PASS@]HOST:PORT"
}

const schemesHelp = "use direct://, socks5://, socks5h://, socks4://, socks4a:// or http://"

// Hop is one parsed proxy URL.
type Hop struct {
	// Kind is the protocol.
	Kind Kind
	// Address is the proxy's "host:port"; empty for KindDirect.
	Address string
	// Username is the SOCKS5/HTTP user or the SOCKS4 user id, decoded.
	Username string
	// Password is decoded; it never appears in String or errors.
	Password string
}

// ParseURL parses one proxy URL. The forms are direct://,
// socks5://[USER:PASS@]HOST:PORT (socks5h:// is the same: names are always
// resolved by the proxy), socks4://[USER@]HOST:PORT,
// socks4a://[USER@]HOST:PORT and http://[USER:PASS@]HOST:PORT. Credentials
// may be percent-encoded. Errors quote the URL without its password.
func ParseURL(raw string) (*Hop, error) {
	hop, err := parseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("proxy %q: %w", redactRaw(raw), err)
	}
	return hop, nil
}

func parseURL(raw string) (*Hop, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("missing scheme: %s", schemesHelp)
	}
	hop := &Hop{}
	switch strings.ToLower(scheme) {
	case "direct":
		hop.Kind = KindDirect
	case "socks5", "socks5h":
		hop.Kind = KindSOCKS5
	case "socks4":
		hop.Kind = KindSOCKS4
	case "socks4a":
		hop.Kind = KindSOCKS4a
	case "http":
		hop.Kind = KindHTTP
	case "https":
		return nil, fmt.Errorf("TLS to the proxy is not supported: use http://[USER:PASS@]HOST:PORT")
	default:
		return nil, fmt.Errorf("unknown scheme %q: %s", scheme, schemesHelp)
	}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	if tail != "" && tail != "/" {
		return nil, fmt.Errorf("path, query or fragment not allowed: use %s", hop.Kind.usage())
	}
	if hop.Kind == KindDirect {
		if authority != "" {
			return nil, fmt.Errorf("direct takes no host or credentials: use direct://")
		}
		return hop, nil
	}
	hostPort := authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		if err := hop.setCredentials(authority[:at]); err != nil {
			return nil, err
		}
		hostPort = authority[at+1:]
	}
	address, err := parseProxyAddress(hostPort, hop.Kind)
	if err != nil {
		return nil, err
	}
	hop.Address = address
	return hop, nil
}

// setCredentials decodes USER[:PASS].
func (h *Hop) setCredentials(userinfo string) error {
	userText, passText, hasPass := strings.Cut(userinfo, ":")
	user, err := url.PathUnescape(userText)
	if err != nil {
		return fmt.Errorf("bad percent-encoding in the user name: use %s", h.Kind.usage())
	}
	pass, err := url.PathUnescape(passText)
	if err != nil {
		return fmt.Errorf("bad percent-encoding in the password: use %s", h.Kind.usage())
	}
	switch {
	case hasPass && (h.Kind == KindSOCKS4 || h.Kind == KindSOCKS4a):
		return fmt.Errorf("%s has a user id but no password: use %s", h.Kind, h.Kind.usage())
	case user == "" && (hasPass || h.Kind != KindSOCKS4 && h.Kind != KindSOCKS4a):
		return fmt.Errorf("empty user name before '@': use %s", h.Kind.usage())
	case len(user) > 255 || len(pass) > 255:
		return fmt.Errorf("user name and password must be at most 255 bytes each")
	}
	h.Username, h.Password = user, pass
	return nil
}

// parseProxyAddress checks HOST:PORT and returns it normalised.
func parseProxyAddress(hostPort string, kind Kind) (string, error) {
	usage := kind.usage()
	if hostPort == "" {
		return "", fmt.Errorf("missing host: use %s", usage)
	}
	colon := strings.LastIndex(hostPort, ":")
	if colon < 0 || strings.HasSuffix(hostPort, "]") {
		return "", fmt.Errorf("missing port: use %s", usage)
	}
	if !strings.HasPrefix(hostPort, "[") && strings.Count(hostPort, ":") > 1 {
		return "", fmt.Errorf("IPv6 address needs brackets, as in %s://[::1]:1080", kind)
	}
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return "", fmt.Errorf("bad HOST:PORT %q: use %s", hostPort, usage)
	}
	switch n, err := strconv.ParseUint(port, 10, 16); {
	case port == "":
		return "", fmt.Errorf("missing port: use %s", usage)
	case err != nil || n == 0:
		return "", fmt.Errorf("port %q is not a number from 1 to 65535: use %s", port, usage)
	case host == "":
		return "", fmt.Errorf("missing host: use %s", usage)
	}
	if _, err := netip.ParseAddr(host); err != nil && !validHostName(host) {
		return "", fmt.Errorf("bad host %q: want an IP address or a DNS name", host)
	}
	return net.JoinHostPort(host, port), nil
}

// validHostName accepts DNS names: letters, digits, '-', '_' and dots.
func validHostName(name string) bool {
	if len(name) > 253 || strings.HasPrefix(name, ".") || strings.Contains(name, "..") {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}

// String returns the hop as a URL without its password, for logs.
func (h *Hop) String() string {
	if h.Kind == KindDirect {
		return "direct://"
	}
	user := ""
	if h.Username != "" {
		user = url.User(h.Username).String() + "@"
	}
	return h.Kind.String() + "://" + user + h.Address
}

// Redacted is String; the name says so at call sites that log.
func (h *Hop) Redacted() string { return h.String() }

// Dialer returns the dialer for this hop, reaching the proxy through
// forward. For KindDirect it returns forward itself.
func (h *Hop) Dialer(forward Dialer, handshakeTimeout time.Duration) Dialer {
	switch h.Kind {
	case KindSOCKS5:
		return &SOCKS5{Address: h.Address, Username: h.Username, Password: h.Password,
			Forward: forward, HandshakeTimeout: handshakeTimeout}
	case KindSOCKS4, KindSOCKS4a:
		return &SOCKS4{Address: h.Address, UserID: h.Username, RemoteNames: h.Kind == KindSOCKS4a,
			Forward: forward, HandshakeTimeout: handshakeTimeout}
	case KindHTTP:
		return &HTTPConnect{Address: h.Address, Username: h.Username, Password: h.Password,
			Forward: forward, HandshakeTimeout: handshakeTimeout}
	}
	return forward
}

// redactRaw hides the password of an unparsed URL, for error messages.
func redactRaw(raw string) string {
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + 3
	}
	// The last '@' anywhere: a password may hold an unescaped '/', '?' or
	// '#' that would otherwise end the authority early.
	authority := raw[start:]
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return raw
	}
	user, _, hasPass := strings.Cut(authority[:at], ":")
	if !hasPass {
		return raw
	}
	return raw[:start] + user + ":xxxxx" + raw[start+at:]
}
