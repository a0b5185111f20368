package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// SOCKS5 dials through a SOCKS5 proxy (RFC 1928), with username/password
// authentication (RFC 1929) when Username is set. Names are sent to the
// proxy unresolved. Errors name the operation but not the proxy; a Chain adds
// the hop.
type SOCKS5 struct {
	// Address is the proxy's "host:port".
	Address string
	// Username and Password, if Username is non-empty, are offered with
	// method 0x02. Each is at most 255 bytes.
	Username string
	Password string
	// Forward reaches the proxy: the host (Direct) or the previous hop. UDP
	// ASSOCIATE works only when Forward is also a PacketDialer.
	Forward Dialer
	// HandshakeTimeout bounds the exchange after the TCP connection is up;
	// zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// UDPResolver, if set, resolves a destination name for DialPacket, so
	// that the datagrams carry an address; see UDPResolver. Nil sends the
	// name (remote DNS).
	UDPResolver UDPResolver
}

var (
	_ Dialer       = (*SOCKS5)(nil)
	_ PacketDialer = (*SOCKS5)(nil)
)

// SOCKS5 protocol constants (RFC 1928, RFC 1929).
const (
	socks5Version     = 0x05
	authVersion       = 0x01
	methodNoAuth      = 0x00
	methodUserPass    = 0x02
	methodNoneOK      = 0xff
	cmdConnect        = 0x01
	cmdUDPAssociate   = 0x03
	socks5ReplyOK     = 0x00
	replyCmdNotSupp   = 0x07
	socks5ReplyHeader = 4 // VER REP RSV ATYP
)

// DialContext implements Dialer with a CONNECT request.
func (s *SOCKS5) DialContext(ctx context.Context, network, address string) (conn net.Conn, err error) {
	if err := checkNetwork(network, "tcp"); err != nil {
		return nil, err
	}
	target, err := parseHostPort(address)
	if err != nil {
		return nil, err
	}
	conn, err = s.Forward.DialContext(ctx, "tcp", s.Address)
	if err != nil {
		return nil, err // the forward dialer names itself
	}
	defer closeOnError(conn, &err)
	err = runHandshake(ctx, conn, s.HandshakeTimeout, func() error {
		if err := s.negotiate(conn); err != nil {
			return err
		}
		_, err := socks5Request(conn, cmdConnect, target)
		return err
	})
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// negotiate picks an authentication method and authenticates.
func (s *SOCKS5) negotiate(rw io.ReadWriter) error {
	greeting := []byte{socks5Version, 1, methodNoAuth}
	if s.Username != "" {
		greeting = []byte{socks5Version, 2, methodNoAuth, methodUserPass}
	}
	if _, err := rw.Write(greeting); err != nil {
		return fmt.Errorf("send greeting: %w", err)
	}
	method, err := readSOCKS5MethodReply(rw)
	if err != nil {
		return fmt.Errorf("read method choice: %w", err)
	}
	switch {
	case method == methodNoAuth:
		return nil
	case method == methodUserPass && s.Username != "":
		return s.authenticate(rw)
	case method == methodNoneOK && s.Username == "":
		return fmt.Errorf("%w: proxy accepts none of our methods: give USER:PASS in the proxy URL", ErrAuth)
	case method == methodNoneOK:
		return fmt.Errorf("%w: proxy accepts none of our methods (no-auth, username/password)", ErrAuth)
	default:
		return fmt.Errorf("%w: proxy chose method %#x, which we did not offer", ErrProtocol, method)
	}
}

// authenticate runs the RFC 1929 sub-negotiation.
func (s *SOCKS5) authenticate(rw io.ReadWriter) error {
	if len(s.Username) > 255 || len(s.Password) > 255 {
		return fmt.Errorf("%w: username and password must be at most 255 bytes each", ErrAuth)
	}
	req := make([]byte, 0, 3+len(s.Username)+len(s.Password))
	req = append(req, authVersion, byte(len(s.Username)))
	req = append(req, s.Username...)
	req = append(req, byte(len(s.Password)))
	req = append(req, s.Password...)
	if _, err := rw.Write(req); err != nil {
		return fmt.Errorf("send credentials: %w", err)
	}
	if err := readSOCKS5AuthReply(rw); err != nil {
		return err
	}
	return nil
}

// socks5Request sends a request and reads the reply; it returns the bound
// address from the reply.
func socks5Request(rw io.ReadWriter, cmd byte, target hostPort) (hostPort, error) {
	what := "connect to " + target.String()
	if cmd == cmdUDPAssociate {
		what = "udp associate"
	}
	req := appendSOCKS5Addr([]byte{socks5Version, cmd, 0}, target)
	if _, err := rw.Write(req); err != nil {
		return hostPort{}, fmt.Errorf("%s: send request: %w", what, err)
	}
	bound, err := readSOCKS5Reply(rw)
	if err != nil {
		if cmd == cmdUDPAssociate && errors.Is(err, errCmdNotSupported) {
			err = fmt.Errorf("%w (%w): %w", ErrUDPRefused, ErrUDPUnsupported, err)
		}
		return hostPort{}, fmt.Errorf("%s: %w", what, err)
	}
	return bound, nil
}

// readSOCKS5MethodReply reads the server's method choice: VER METHOD.
func readSOCKS5MethodReply(r io.Reader) (byte, error) {
	var b [2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, truncated(err)
	}
	if b[0] != socks5Version {
		return 0, fmt.Errorf("%w: version %#x in method reply, want 5: is this a SOCKS5 proxy?", ErrProtocol, b[0])
	}
	return b[1], nil
}

// readSOCKS5AuthReply reads the RFC 1929 status: VER STATUS.
func readSOCKS5AuthReply(r io.Reader) error {
	var b [2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return fmt.Errorf("read authentication status: %w", truncated(err))
	}
	if b[0] != authVersion {
		return fmt.Errorf("%w: authentication reply version %#x, want 1", ErrProtocol, b[0])
	}
	if b[1] != 0 {
		return fmt.Errorf("%w: proxy rejected the username or password (status %#x)", ErrAuth, b[1])
	}
	return nil
}

var errCmdNotSupported = errors.New("command not supported by the proxy (reply 7)")

// readSOCKS5Reply reads VER REP RSV ATYP BND.ADDR BND.PORT. A failure reply
// is returned as an error without reading the address, since some servers
// close right after the reply code.
func readSOCKS5Reply(r io.Reader) (hostPort, error) {
	var buf [socks5ReplyHeader + 1 + maxNameLen + 2]byte
	if _, err := io.ReadFull(r, buf[:socks5ReplyHeader]); err != nil {
		return hostPort{}, fmt.Errorf("read reply: %w", truncated(err))
	}
	if buf[0] != socks5Version {
		return hostPort{}, fmt.Errorf("%w: version %#x in reply, want 5", ErrProtocol, buf[0])
	}
	if err := socks5ReplyError(buf[1]); err != nil {
		return hostPort{}, err
	}
	// The address length depends on ATYP and, for a name, on its first byte.
	off, addrLen := socks5ReplyHeader, 0
	switch buf[3] {
	case atypIPv4:
		addrLen = 4
	case atypIPv6:
		addrLen = 16
	case atypDomain:
		if _, err := io.ReadFull(r, buf[off:off+1]); err != nil {
			return hostPort{}, fmt.Errorf("read reply address: %w", truncated(err))
		}
		addrLen = int(buf[off])
		off++
	default:
		return hostPort{}, fmt.Errorf("%w: unknown address type %#x in reply", ErrProtocol, buf[3])
	}
	end := off + addrLen + 2
	if _, err := io.ReadFull(r, buf[off:end]); err != nil {
		return hostPort{}, fmt.Errorf("read reply address: %w", truncated(err))
	}
	bound, _, err := parseSOCKS5Addr(buf[3:end])
	if err != nil {
		return hostPort{}, err
	}
	return bound, nil
}

// socks5ReplyError maps a SOCKS5 reply code to an error (nil for success).
func socks5ReplyError(rep byte) error {
	switch rep {
	case socks5ReplyOK:
		return nil
	case 0x01:
		return errors.New("general SOCKS server failure (reply 1)")
	case 0x02:
		return fmt.Errorf("%w (reply 2)", ErrNotAllowed)
	case 0x03:
		return fmt.Errorf("network unreachable (reply 3): %w", ErrUnreachable)
	case 0x04:
		return fmt.Errorf("host unreachable (reply 4): %w", ErrUnreachable)
	case 0x05:
		return ErrRefused
	case 0x06:
		return fmt.Errorf("TTL expired (reply 6): %w", ErrUnreachable)
	case replyCmdNotSupp:
		return errCmdNotSupported
	case 0x08:
		return errors.New("address type not supported by the proxy (reply 8)")
	default:
		return fmt.Errorf("%w: unknown reply code %#x", ErrProtocol, rep)
	}
}

// truncated turns a short read into an error that says the proxy closed.
func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: proxy closed the connection mid-reply", ErrProtocol)
	}
	return err
}

// checkNetwork accepts "tcp", "tcp4", "tcp6" (want "tcp") or the udp ones.
func checkNetwork(network, want string) error {
	switch network {
	case want, want + "4", want + "6":
		return nil
	}
	return fmt.Errorf("network %q not supported here: use %q", network, want)
}
