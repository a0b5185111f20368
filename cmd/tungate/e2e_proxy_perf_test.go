package main_test

import (
	"testing"
)

// BenchmarkProxyThroughput downloads the same 64 MB file from the app
// namespace directly, through one SOCKS5 hop and through two, one after
// the other in the same run, and logs the best of two downloads of each:
// go test -run '^$' -bench ProxyThroughput -benchtime 1x -v ./cmd/tungate
func BenchmarkProxyThroughput(b *testing.B) {
	for b.Loop() {
		proxyThroughput(b)
	}
}

func proxyThroughput(t testing.TB) {
	l := newProxyLab(t, 64<<20)
	l.startDante(t, portDante, false)
	l.startDante(t, portDanteAuth, false) // a second dante, for a dante -> dante chain
	l.startMicrosocks(t, portMicrosocks, "", "")
	dante := l.proxyURL("socks5", nil, portDante)
	dante2 := l.proxyURL("socks5", nil, portDanteAuth)
	micro := l.proxyURL("socks5", nil, portMicrosocks)
	cases := []struct {
		name    string
		proxies []string
	}{
		{"direct", nil},
		{"1 hop: dante", []string{dante}},
		{"1 hop: microsocks", []string{micro}},
		{"2 hops: microsocks -> dante", []string{micro, dante}},
		{"2 hops: dante -> dante", []string{dante2, dante}},
	}
	for _, tc := range cases {
		var args []string
		for _, p := range tc.proxies {
			args = append(args, "--proxy", p)
		}
		app, gw := l.gateway(t, args...)
		best := 0.0
		for range 2 {
			best = max(best, l.download(t, app, l.webURL(false)))
		}
		t.Logf("%-28s %4.0f MB/s (%d MB, best of 2)", tc.name, best, l.web.Size>>20)
		gw.Stop()
	}
}
