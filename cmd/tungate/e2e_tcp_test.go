package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// Ports of the peer server in S. Nothing listens on portClosed.
const (
	portEcho    = 7001
	portSink    = 7002
	portTxfirst = 7003
	portClosed  = 7009
)

// transferSize is the size of the big transfers: at least 50 MB, so that
// windows, buffers and back-pressure all get exercised.
const transferSize = 64 << 20

func TestHTTPDownload(t *testing.T) {
	t.Parallel()
	netlab.RequireBinary(t, "curl")
	tp := newTopo(t)
	web := netlab.StartNginx(t, tp.srv, transferSize)
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			url := fmt.Sprintf("http://%s%s", netip.AddrPortFrom(tp.srvAddr(fam.v6), netlab.NginxPort), web.Path)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := tp.app.Exec(ctx, "curl", "--silent", "--show-error", "--fail", "--output", "-", url)
			h := sha256.New()
			var stderr strings.Builder
			cmd.Stdout, cmd.Stderr = h, &stderr
			start := time.Now()
			if err := cmd.Run(); err != nil {
				t.Fatalf("curl %s: %v\n%s", url, err, stderr.String())
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != web.SHA256 {
				t.Fatalf("downloaded sha256 %s, want %s", got, web.SHA256)
			}
			t.Logf("%d MB in %v", transferSize>>20, time.Since(start).Round(time.Millisecond))
		})
	}
}

func TestTCPStreams(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	var listen []string
	for _, fam := range families {
		addr := tp.srvAddr(fam.v6)
		for flag, port := range map[string]uint16{"-tcp-echo": portEcho, "-tcp-sink": portSink, "-tcp-txfirst": portTxfirst} {
			listen = append(listen, flag, netip.AddrPortFrom(addr, port).String())
		}
	}
	srv := netlab.StartPeer(t, tp.srv, append(listen, "-txfirst-size", "3000000")...)

	for _, fam := range families {
		t.Run("upload/"+fam.name, func(t *testing.T) {
			// The sink replies with the size and sha256 of what it read.
			tp.peer(t, "send", "-addr", tp.srvPort(fam.v6, portSink), "-size", fmt.Sprint(transferSize))
		})
		t.Run("half-close/client-first/"+fam.name, func(t *testing.T) {
			// The client shuts down its sending side first; the server's
			// reply must still arrive after it has read the EOF.
			tp.peer(t, "send", "-addr", tp.srvPort(fam.v6, portSink), "-size", "100000")
		})
		t.Run("half-close/server-first/"+fam.name, func(t *testing.T) {
			// The server sends 3 MB and shuts down its side; the client
			// must get all of it and still be able to send.
			out := tp.peer(t, "recvfirst", "-addr", tp.srvPort(fam.v6, portTxfirst), "-expect", "3000000", "-size", "200000")
			report := "txfirst " + strings.TrimPrefix(out, "ok ")
			if err := srv.WaitOutput(report, 5*time.Second); err != nil {
				t.Fatalf("server did not receive what the client sent after the half-close: %v", err)
			}
		})
		t.Run("concurrent/"+fam.name, func(t *testing.T) {
			tp.peer(t, "echo", "-addr", tp.srvPort(fam.v6, portEcho), "-conns", "200", "-size", "20000")
		})
	}
}

func TestTCPConnectFailures(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	for _, fam := range families {
		t.Run("refused/"+fam.name, func(t *testing.T) {
			addr := tp.srvPort(fam.v6, portClosed)
			out, err := netlab.RunPeer(t, tp.app, "dial", "-addr", addr, "-timeout", "10s")
			if err == nil || !strings.Contains(out, "connection refused") {
				t.Fatalf("connect to closed port %s: want connection refused, got err=%v output:\n%s", addr, err, out)
			}
			if took := dialTime(t, out); took > time.Second {
				t.Errorf("refusal took %v, want < 1s", took)
			}
		})
		t.Run("unreachable/"+fam.name, func(t *testing.T) {
			// Nobody holds the dead address, so the gateway's connect
			// gets no answer; --connect-timeout 2s must end it.
			addr := netip.AddrPortFrom(tp.deadAddr(fam.v6), 80).String()
			out, err := netlab.RunPeer(t, tp.app, "dial", "-addr", addr, "-timeout", "20s")
			if err == nil {
				t.Fatalf("connect to dead address %s succeeded:\n%s", addr, out)
			}
			if took := dialTime(t, out); took > 5*time.Second {
				t.Errorf("failure took %v, want < 5s (--connect-timeout 2s): %s", took, out)
			}
			t.Log(out)
		})
	}
}

// dialTime returns the connect time "peer dial" measured, which leaves out
// the time to start the process.
func dialTime(t *testing.T, out string) time.Duration {
	t.Helper()
	m := regexp.MustCompile(`after (\S+?):? `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no time in peer output %q", out)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatalf("peer output %q: %v", out, err)
	}
	return d
}
