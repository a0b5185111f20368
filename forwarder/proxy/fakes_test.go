package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// tserver is an in-test TCP server on 127.0.0.1. Cleanup closes the
// listener and every connection it saw, and waits for all its goroutines.
type tserver struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []io.Closer
}

func serve(t *testing.T, handle func(net.Conn)) *tserver {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tserver{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.track(c)
			s.wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.closeAll()
		s.wg.Wait()
	})
	return s
}

func (s *tserver) addr() string { return s.ln.Addr().String() }

func (s *tserver) track(c io.Closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns = append(s.conns, c)
}

func (s *tserver) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// dialTarget dials what a fake proxy was asked for; any name means
// 127.0.0.1, so tests never leave loopback.
func (s *tserver) dialTarget(hostport string) (net.Conn, error) {
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	c, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return nil, err
	}
	s.track(c)
	return c, nil
}

// pipe copies both ways until both directions end.
func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(a, b); a.(*net.TCPConn).CloseWrite() })
	wg.Go(func() { io.Copy(b, a); b.(*net.TCPConn).CloseWrite() })
	wg.Wait()
}

// startEcho serves TCP echo.
func startEcho(t *testing.T) *tserver {
	return serve(t, func(c net.Conn) { io.Copy(c, c) })
}

// startSilent accepts connections and never answers.
func startSilent(t *testing.T) *tserver {
	return serve(t, func(c net.Conn) { io.Copy(io.Discard, c) })
}

// reader reads fixed-size fields and remembers the first error.
type reader struct {
	r   io.Reader
	err error
}

func (r *reader) n(k int) []byte {
	b := make([]byte, k)
	if r.err == nil {
		_, r.err = io.ReadFull(r.r, b)
	}
	return b
}

// addr reads ATYP ADDR PORT and returns "host:port".
func (r *reader) addr() string {
	var host string
	switch r.n(1)[0] {
	case 1:
		host = net.IP(r.n(4)).String()
	case 4:
		host = net.IP(r.n(16)).String()
	case 3:
		host = string(r.n(int(r.n(1)[0])))
	default:
		r.err = fmt.Errorf("bad atyp")
	}
	port := binary.BigEndian.Uint16(r.n(2))
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// fakeSOCKS5 is a SOCKS5 server for tests.
type fakeSOCKS5 struct {
	user, pass       string
	reply            byte // non-zero: answer CONNECT with this code
	relayUnspecified bool // answer UDP ASSOCIATE with 0.0.0.0
	junkFirst        bool // before each UDP reply, send a fragment and a stranger's datagram
	refuseUDP        bool // answer UDP ASSOCIATE with reply 7, as microsocks does
	*tserver

	mu      sync.Mutex
	targets []string
	ctrls   []net.Conn
}

func startSOCKS5(t *testing.T, f *fakeSOCKS5) *fakeSOCKS5 {
	f.tserver = serve(t, f.handle)
	return f
}

// requests counts the requests (CONNECT and UDP ASSOCIATE) it answered.
func (f *fakeSOCKS5) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.targets)
}

func (f *fakeSOCKS5) lastTarget() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.targets) == 0 {
		return ""
	}
	return f.targets[len(f.targets)-1]
}

// closeControls kills every UDP ASSOCIATE control connection.
func (f *fakeSOCKS5) closeControls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.ctrls {
		c.Close()
	}
}

func (f *fakeSOCKS5) handle(c net.Conn) {
	r := &reader{r: c}
	methods := r.n(int(r.n(2)[1]))
	want := byte(0)
	if f.user != "" {
		want = 2
	}
	if r.err != nil {
		return
	}
	if !bytes.Contains(methods, []byte{want}) {
		c.Write([]byte{5, 0xff})
		return
	}
	c.Write([]byte{5, want})
	if want == 2 {
		user := string(r.n(int(r.n(2)[1])))
		pass := string(r.n(int(r.n(1)[0])))
		if r.err != nil || user != f.user || pass != f.pass {
			c.Write([]byte{1, 1})
			return
		}
		c.Write([]byte{1, 0})
	}
	req := r.n(3)
	target := r.addr()
	if r.err != nil {
		return
	}
	f.mu.Lock()
	f.targets = append(f.targets, target)
	f.mu.Unlock()
	switch {
	case req[1] == 3 && f.refuseUDP:
		c.Write([]byte{5, 7, 0, 1, 0, 0, 0, 0, 0, 0})
	case req[1] == 3:
		f.associate(c)
	case f.reply != 0:
		c.Write([]byte{5, f.reply, 0, 1, 0, 0, 0, 0, 0, 0})
	default:
		up, err := f.dialTarget(target)
		if err != nil {
			c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
			return
		}
		defer up.Close()
		c.Write([]byte{5, 0, 0, 1, 127, 0, 0, 1, 0, 1})
		pipe(c, up)
	}
}

func (f *fakeSOCKS5) associate(ctrl net.Conn) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return
	}
	f.track(pc)
	f.mu.Lock()
	f.ctrls = append(f.ctrls, ctrl)
	f.mu.Unlock()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ip := []byte{127, 0, 0, 1}
	if f.relayUnspecified {
		ip = []byte{0, 0, 0, 0}
	}
	ctrl.Write(append(append([]byte{5, 0, 0, 1}, ip...), byte(port>>8), byte(port)))
	var wg sync.WaitGroup
	wg.Go(func() { f.relayUDP(pc) })
	io.Copy(io.Discard, ctrl)
	pc.Close()
	wg.Wait()
}

// relayUDP supports IPv4 destinations only, which is all the tests use.
func (f *fakeSOCKS5) relayUDP(pc net.PacketConn) {
	var client net.Addr
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if client == nil || from.String() == client.String() {
			client = from
			b := buf[:n]
			if len(b) < 10 || b[3] != 1 {
				continue
			}
			dst := &net.UDPAddr{IP: net.IP(b[4:8]), Port: int(binary.BigEndian.Uint16(b[8:10]))}
			pc.WriteTo(b[10:], dst)
			continue
		}
		src := from.(*net.UDPAddr)
		hdr := []byte{0, 0, 0, 1, 127, 0, 0, 1, byte(src.Port >> 8), byte(src.Port)}
		if f.junkFirst {
			frag := bytes.Clone(hdr)
			frag[2] = 1
			pc.WriteTo(append(frag, "fragment"...), client)
			other := bytes.Clone(hdr)
			other[9]++
			pc.WriteTo(append(other, "stranger"...), client)
		}
		pc.WriteTo(append(hdr, buf[:n]...), client)
	}
}

// startUDPEcho serves UDP echo on 127.0.0.1.
func startUDPEcho(t *testing.T) string {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	})
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	return pc.LocalAddr().String()
}

// fakeSOCKS4 is a SOCKS4/4a server for tests.
type fakeSOCKS4 struct {
	reply byte // non-zero: answer with this code
	*tserver

	mu             sync.Mutex
	userID, target string
}

func startSOCKS4(t *testing.T, f *fakeSOCKS4) *fakeSOCKS4 {
	f.tserver = serve(t, f.handle)
	return f
}

func (f *fakeSOCKS4) handle(c net.Conn) {
	br := bufio.NewReader(c)
	r := &reader{r: br}
	hdr := r.n(8)
	user, err := br.ReadString(0)
	if r.err != nil || err != nil {
		return
	}
	host := net.IP(hdr[4:8]).String()
	if hdr[4] == 0 && hdr[5] == 0 && hdr[6] == 0 && hdr[7] != 0 {
		if host, err = br.ReadString(0); err != nil {
			return
		}
		host = strings.TrimSuffix(host, "\x00")
	}
	target := net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(hdr[2:4]))))
	f.mu.Lock()
	f.userID, f.target = strings.TrimSuffix(user, "\x00"), target
	f.mu.Unlock()
	if f.reply != 0 {
		c.Write([]byte{0, f.reply, 0, 0, 0, 0, 0, 0})
		return
	}
	up, err := f.dialTarget(target)
	if err != nil {
		c.Write([]byte{0, 91, 0, 0, 0, 0, 0, 0})
		return
	}
	defer up.Close()
	c.Write([]byte{0, 90, 0, 0, 0, 0, 0, 0})
	pipe(c, up)
}

// fakeHTTP is an HTTP CONNECT proxy for tests.
type fakeHTTP struct {
	auth      string // non-empty: required "Basic ..." value
	status    string // non-empty: answer with this status, no tunnel
	earlyData string // sent in the same write as the 200 headers
	*tserver

	mu     sync.Mutex
	target string
	host   string
}

func startHTTP(t *testing.T, f *fakeHTTP) *fakeHTTP {
	f.tserver = serve(t, f.handle)
	return f
}

func (f *fakeHTTP) handle(c net.Conn) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		return
	}
	f.mu.Lock()
	f.target, f.host = req.RequestURI, req.Host
	f.mu.Unlock()
	if f.auth != "" && req.Header.Get("Proxy-Authorization") != f.auth {
		io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n")
		return
	}
	if f.status != "" {
		io.WriteString(c, "HTTP/1.1 "+f.status+"\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := f.dialTarget(req.RequestURI)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\nX-Pad: 1\r\n\r\n"+f.earlyData)
	pipe(c, up)
}
