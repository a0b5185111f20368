package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
)

func FuzzSOCKS5Reply(f *testing.F) {
	for _, seed := range [][]byte{
		{},
		{5},
		{5, 0},
		{5, 0, 0, 1, 127, 0, 0, 1, 0x04, 0x38},
		{5, 0, 0, 3, 4, 'h', 'o', 's', 't', 0, 80},
		{5, 0, 0, 3, 0, 0, 80},
		{5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4, 0, 1},
		{5, 5, 0, 1},
		{4, 0x5a, 0, 0},
		{5, 0, 0, 9, 1},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		bound, err := readSOCKS5Reply(r)
		if err == nil && !bound.IP.IsValid() && bound.Name == "" {
			t.Fatalf("accepted reply %x with no bound address", data)
		}
		if consumed := len(data) - r.Len(); consumed > socks5ReplyHeader+1+maxNameLen+2 {
			t.Fatalf("read %d bytes, more than a reply can hold", consumed)
		}
		// The method and auth replies share the input: only panics matter.
		readSOCKS5MethodReply(bytes.NewReader(data))
		readSOCKS5AuthReply(bytes.NewReader(data))
	})
}

func FuzzSOCKS5UDP(f *testing.F) {
	for _, seed := range [][]byte{
		{},
		{0},
		{0, 0, 0},
		{0, 0, 0, 1, 127, 0, 0, 1, 0, 53, 'p', 'a', 'y'},
		{0, 0, 1, 1, 127, 0, 0, 1, 0, 53},
		{0, 0, 0, 3, 3, 'a', 'b', 'c', 0, 53, 'x'},
		{0, 0, 0, 3, 200, 'a'},
		{0, 0, 0, 4, 1, 2, 3},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		frag, from, payload, err := parseSOCKS5UDP(data)
		if err != nil {
			return
		}
		if len(payload) > len(data) {
			t.Fatalf("payload longer than the datagram")
		}
		// What we parse, we must encode to something that parses the same.
		again := append(appendSOCKS5Addr([]byte{0, 0, frag}, from), payload...)
		frag2, from2, payload2, err := parseSOCKS5UDP(again)
		if err != nil || frag2 != frag || from2 != from || !bytes.Equal(payload2, payload) {
			t.Fatalf("re-encoding %x gave %x: %v", data, again, err)
		}
	})
}

func FuzzSOCKS4Reply(f *testing.F) {
	for _, seed := range [][]byte{
		{},
		{0},
		{0, 0x5a, 0, 0, 0, 0, 0, 0},
		{0, 0x5b, 0, 0, 0, 0, 0, 0},
		{4, 0x5d, 1, 2, 3, 4, 5, 6},
		{5, 0, 0, 1, 127, 0, 0, 1},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := readSOCKS4Reply(bytes.NewReader(data))
		if err == nil && (len(data) < socks4ReplyLen || data[1] != socks4Granted) {
			t.Fatalf("accepted %x", data)
		}
	})
}

func FuzzHTTPConnectResponse(f *testing.F) {
	for _, seed := range []string{
		"",
		"H",
		"HTTP/1.1 200 Connection established\r\n\r\n",
		"HTTP/1.0 200\r\n\r\nearly data",
		"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
		"HTTP/1.1 200 OK\n\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 -20 OK\r\n\r\n",
		"SSH-2.0-OpenSSH_9.2\r\n",
		"HTTP/1.1 200 OK\r\nX: " + string(bytes.Repeat([]byte("a"), 5000)) + "\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		code, status, err := readHTTPConnectResponse(bufio.NewReaderSize(bytes.NewReader(data), httpReaderSize))
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not match ErrProtocol", err)
			}
			return
		}
		if code < 100 || code > 999 || len(status) > 80 {
			t.Fatalf("accepted code %d status %q", code, status)
		}
	})
}

func FuzzParseURL(f *testing.F) {
	for _, seed := range []string{
		"", "direct://", "socks5://h:1", "socks5h://u:p@[::1]:1080/", "socks4a://id@h:1",
		"http://a%20b:c@proxy:3128", "http://h", "socks5://@:", "socks5://u:p@@h:1", "x://",
		"socks5://[fe80::1%25eth0]:1", "socks5://[::1", "socks5://u:%@h:1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		hop, err := ParseURL(raw)
		if err != nil {
			return
		}
		again, err := ParseURL(hop.String())
		if err != nil {
			t.Fatalf("%q parsed, but its String %q does not: %v", raw, hop.String(), err)
		}
		hop.Password = ""
		if *again != *hop {
			t.Fatalf("%q: String %q reparses as %+v, want %+v", raw, hop.String(), *again, *hop)
		}
	})
}
