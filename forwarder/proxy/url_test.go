package proxy

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		raw  string
		want Hop
		str  string // String(); empty means raw
	}{
		{raw: "direct://", want: Hop{Kind: KindDirect}},
		{raw: "socks5://127.0.0.1:1080", want: Hop{Kind: KindSOCKS5, Address: "127.0.0.1:1080"}},
		{raw: "socks5h://proxy.example:1080", want: Hop{Kind: KindSOCKS5, Address: "proxy.example:1080"},
			str: "socks5://proxy.example:1080"},
		{raw: "SOCKS5://u:p@h:1", want: Hop{Kind: KindSOCKS5, Address: "h:1", Username: "u", Password: "p"},
			str: "socks5://u@h:1"},
		{raw: "socks5://us%40er:p%3Aa%2Fss@[::1]:1080", want: Hop{Kind: KindSOCKS5, Address: "[::1]:1080",
			Username: "us@er", Password: "p:a/ss"}, str: "socks5://us%40er@[::1]:1080"},
		{raw: "socks5://user:@10.0.0.1:1080", want: Hop{Kind: KindSOCKS5, Address: "10.0.0.1:1080", Username: "user"},
			str: "socks5://user@10.0.0.1:1080"},
		{raw: "socks4://10.0.0.1:1080/", want: Hop{Kind: KindSOCKS4, Address: "10.0.0.1:1080"},
			str: "socks4://10.0.0.1:1080"},
		{raw: "socks4a://bob@p.example:1080", want: Hop{Kind: KindSOCKS4a, Address: "p.example:1080", Username: "bob"}},
		{raw: "http://a:b@proxy:3128", want: Hop{Kind: KindHTTP, Address: "proxy:3128", Username: "a", Password: "b"},
			str: "http://a@proxy:3128"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			hop, err := ParseURL(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if *hop != tt.want {
				t.Errorf("got %+v, want %+v", *hop, tt.want)
			}
			wantStr := tt.str
			if wantStr == "" {
				wantStr = tt.raw
			}
			if hop.String() != wantStr || hop.Redacted() != wantStr {
				t.Errorf("String() = %q, want %q", hop.String(), wantStr)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"socks5://h", `proxy "socks5://h": missing port: use socks5://[USER:PASS@]HOST:PORT`},
		{"socks5://h:", `proxy "socks5://h:": missing port: use socks5://[USER:PASS@]HOST:PORT`},
		{"socks5://[::1]", `proxy "socks5://[::1]": missing port`},
		{"socks5://::1:1080", `IPv6 address needs brackets`},
		{"socks5://:1080", `proxy "socks5://:1080": missing host: use socks5://[USER:PASS@]HOST:PORT`},
		{"socks5://", `missing host`},
		{"socks5://h:0", `port "0" is not a number from 1 to 65535`},
		{"socks5://h:99999", `port "99999" is not a number from 1 to 65535`},
		{"socks5://h:http", `port "http" is not a number`},
		{"socks5://h:1/path", `path, query or fragment not allowed: use socks5://[USER:PASS@]HOST:PORT`},
		{"http://h:1?x=1", `path, query or fragment not allowed: use http://`},
		{"http://h:1#f", `path, query or fragment not allowed`},
		{"ftp://h:1", `proxy "ftp://h:1": unknown scheme "ftp": use direct://, socks5://`},
		{"https://h:1", `TLS to the proxy is not supported`},
		{"h:1080", `missing scheme`},
		{"", `missing scheme`},
		{"direct://h:1", `direct takes no host`},
		{"socks4://u:p@h:1", `proxy "socks4://u:xxxxx@h:1": socks4 has a user id but no password: use socks4://[USER@]HOST:PORT`},
		{"socks5://:secret@h:1", `proxy "socks5://:xxxxx@h:1": empty user name`},
		{"socks5://u:%zz@h:1", `bad percent-encoding in the password`},
		{"socks5://u:pa/ss@h:1", `proxy "socks5://u:xxxxx@h:1": path, query`},
		{"socks5://u:pass@h", `proxy "socks5://u:xxxxx@h": missing port`},
		{"socks5://bad host:1", `bad host "bad host"`},
		{"socks5://" + strings.Repeat("u", 256) + ":p@h:1", `at most 255 bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			hop, err := ParseURL(tt.raw)
			if err == nil {
				t.Fatalf("parsed as %+v, want an error", hop)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q: want it to contain %q", err, tt.want)
			}
			for _, secret := range []string{"secret", "pa/ss", ":pass@", ":p@"} {
				if strings.Contains(tt.raw, secret) && strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows the password", err)
				}
			}
		})
	}
}

func TestParseURLRoundTrip(t *testing.T) {
	// String() must parse back to the same hop, less its password.
	for _, raw := range []string{"socks5://a%2Fb@h:1", "socks5://us%40er:pw@h:1", "socks4a://id@[2001:db8::1]:1080", "http://proxy:3128"} {
		hop := mustParse(t, raw)
		again := mustParse(t, hop.String())
		hop.Password = "" // String never shows it
		if *again != *hop {
			t.Errorf("%s: reparsed as %+v, want %+v", raw, *again, *hop)
		}
	}
}
