package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// HTTPConnect dials through an HTTP proxy with the CONNECT method. It carries
// TCP only, and is deliberately not a PacketDialer.
type HTTPConnect struct {
	// Address is the proxy's "host:port".
	Address string
	// Username and Password, if Username is non-empty, are sent as
	// Proxy-Authorization: Basic.
	Username string
	Password string
	// Forward reaches the proxy: the host (Direct) or the previous hop.
	Forward Dialer
	// HandshakeTimeout bounds the exchange after the TCP connection is up;
	// zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
}

var _ Dialer = (*HTTPConnect)(nil)

// Bounds on the proxy's response, so a hostile proxy cannot make us buffer
// without end.
const (
	httpReaderSize     = 4096      // also the longest accepted line
	maxHTTPResponseLen = 16 * 1024 // status line plus headers
)

// DialContext implements Dialer.
func (h *HTTPConnect) DialContext(ctx context.Context, network, address string) (conn net.Conn, err error) {
	if err := checkNetwork(network, "tcp"); err != nil {
		return nil, err
	}
	target, err := parseHostPort(address)
	if err != nil {
		return nil, err
	}
	conn, err = h.Forward.DialContext(ctx, "tcp", h.Address)
	if err != nil {
		return nil, err
	}
	defer closeOnError(conn, &err)
	var tunnel net.Conn
	err = runHandshake(ctx, conn, h.HandshakeTimeout, func() error {
		var err error
		tunnel, err = h.handshake(conn, target)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", target, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tunnel, nil
}

// handshake sends CONNECT and reads the answer. The returned conn replays any
// bytes the proxy sent after its headers.
func (h *HTTPConnect) handshake(conn net.Conn, target hostPort) (net.Conn, error) {
	authority := target.String()
	var req bytes.Buffer
	fmt.Fprintf(&req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", authority, authority)
	if h.Username != "" {
		cred := base64.StdEncoding.EncodeToString([]byte(h.Username + ":" + h.Password))
		fmt.Fprintf(&req, "Proxy-Authorization: Basic %s\r\n", cred)
	}
	req.WriteString("\r\n")
	if _, err := conn.Write(req.Bytes()); err != nil {
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	r := bufio.NewReaderSize(conn, httpReaderSize)
	code, status, err := readHTTPConnectResponse(r)
	if err != nil {
		return nil, err
	}
	switch {
	case code >= 200 && code < 300:
	case code == 407 && h.Username == "":
		return nil, fmt.Errorf("%w: proxy answered %q: give USER:PASS in the proxy URL", ErrAuth, status)
	case code == 407:
		return nil, fmt.Errorf("%w: proxy answered %q", ErrAuth, status)
	case code == 403:
		return nil, fmt.Errorf("%w: proxy answered %q", ErrNotAllowed, status)
	default:
		return nil, fmt.Errorf("proxy answered %q", status)
	}
	if r.Buffered() == 0 {
		return conn, nil
	}
	early, _ := r.Peek(r.Buffered()) // cannot fail: the bytes are buffered
	return &bufferedConn{Conn: conn, pending: bytes.Clone(early)}, nil
}

// readHTTPConnectResponse reads a status line and headers, and returns the
// status code and a printable, shortened status for errors. Headers are
// read and discarded: a CONNECT answer has no body.
func readHTTPConnectResponse(r *bufio.Reader) (code int, status string, err error) {
	total := 0
	readLine := func() ([]byte, error) {
		line, err := r.ReadSlice('\n')
		total += len(line)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return nil, fmt.Errorf("%w: HTTP response line longer than %d bytes", ErrProtocol, r.Size())
		case err != nil:
			return nil, fmt.Errorf("read HTTP response: %w", truncated(err))
		case total > maxHTTPResponseLen:
			return nil, fmt.Errorf("%w: HTTP response headers longer than %d bytes", ErrProtocol, maxHTTPResponseLen)
		}
		return bytes.TrimRight(line, "\r\n"), nil
	}
	line, err := readLine()
	if err != nil {
		return 0, "", err
	}
	code, status, err = parseHTTPStatusLine(line)
	if err != nil {
		return 0, "", err
	}
	for {
		line, err := readLine()
		if err != nil {
			return 0, "", err
		}
		if len(line) == 0 {
			return code, status, nil
		}
	}
}

// parseHTTPStatusLine parses "HTTP/1.x CODE REASON".
func parseHTTPStatusLine(line []byte) (int, string, error) {
	const maxShown = 80
	shown := string(line[:min(len(line), maxShown)])
	version, rest, _ := bytes.Cut(line, []byte(" "))
	if !bytes.HasPrefix(version, []byte("HTTP/1.")) {
		return 0, "", fmt.Errorf("%w: not an HTTP response: %q: is this an HTTP proxy?", ErrProtocol, shown)
	}
	codeText, _, _ := bytes.Cut(rest, []byte(" "))
	code, err := strconv.Atoi(string(codeText))
	if len(codeText) != 3 || err != nil || code < 100 {
		return 0, "", fmt.Errorf("%w: bad HTTP status line %q", ErrProtocol, shown)
	}
	return code, string(rest[:min(len(rest), maxShown)]), nil
}

// bufferedConn is a conn whose first bytes were already read into pending.
type bufferedConn struct {
	net.Conn
	mu      sync.Mutex
	pending []byte
}

// Read returns the pending bytes first, then reads from the connection.
func (c *bufferedConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(b)
}

// CloseWrite half-closes the connection when the one underneath can, so that
// relays can forward a FIN.
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("half-close not supported by the underlying connection")
}
