package control

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/dns"
	"github.com/tungate/tungate/forwarder/flows"
)

// unixClient returns an HTTP client that dials the socket at path.
func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
}

func get(t *testing.T, c *http.Client, method, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://tungate"+path, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPIOnUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "t.sock")
	ln, err := ListenUnix(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := New(nil)
	srv.Serve(ln)
	defer srv.Close()
	c := unixClient(path)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}
	if code, _ := get(t, c, "GET", "/flows"); code != http.StatusServiceUnavailable {
		t.Errorf("before SetSources: %d", code)
	}
	table := flows.New(flows.Options{})
	defer table.Close()
	var q dns.QueryCounts
	srv.SetSources(&Sources{Flows: table, DNS: &q})
	f := table.Begin(flows.Start{Protocol: flows.TCP, Src: netip.MustParseAddrPort("198.18.0.1:5000"), Dst: netip.MustParseAddrPort("10.0.0.2:443"), Route: "direct", Chain: "direct"})
	f.Dialed(time.Millisecond, nil)
	f.Down().Add(12345)
	killed := make(chan struct{})
	f.SetCloser(func() { close(killed) })

	code, body := get(t, c, "GET", "/flows")
	var infos []flows.Info
	if err := json.Unmarshal([]byte(body), &infos); code != 200 || err != nil || len(infos) != 1 || infos[0].BytesDown != 12345 {
		t.Fatalf("/flows = %d %s (%v)", code, body, err)
	}
	code, body = get(t, c, "GET", "/metrics")
	for _, want := range []string{
		`tungate_bytes_total{direction="down",protocol="tcp"} 12345`,
		`tungate_flows_open{protocol="tcp"} 1`,
		`tungate_flows_opened_total{hop="",outcome="relayed",protocol="tcp"} 1`,
		`tungate_dial_duration_seconds_count{chain="direct"} 1`,
		"go_goroutines", "process_cpu_seconds_total",
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %s", code, want)
		}
	}
	if code, _ := get(t, c, "POST", "/flows/999/close"); code != http.StatusNotFound {
		t.Errorf("close of an unknown flow: %d", code)
	}
	if code, _ := get(t, c, "POST", "/flows/x/close"); code != http.StatusBadRequest {
		t.Errorf("close of a bad ID: %d", code)
	}
	if code, _ := get(t, c, "POST", "/flows/1/close"); code != http.StatusNoContent {
		t.Errorf("close: %d", code)
	}
	<-killed
	srv.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after Close: %v", err)
	}
}

func TestListenUnixStaleAndInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.sock")
	// A socket file whose listener is gone without removing it: stale.
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	ln, err := ListenUnix(path, nil)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer ln.Close()
	if _, err := ListenUnix(path, nil); !errors.Is(err, ErrInUse) {
		t.Errorf("second listener: %v, want ErrInUse", err)
	}
	plain := filepath.Join(t.TempDir(), "file")
	os.WriteFile(plain, nil, 0o600)
	if _, err := ListenUnix(plain, nil); err == nil {
		t.Error("a regular file was replaced")
	}
}

func TestGuard(t *testing.T) {
	local := func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.ParseIP("10.1.2.3"), Mask: net.CIDRMask(24, 32)}}, nil
	}
	for _, tc := range []struct {
		listen, dst string
		want        bool
	}{
		{"127.0.0.1:9467", "127.0.0.1:9467", true},
		{"127.0.0.1:9467", "[::1]:9467", true},
		{"127.0.0.1:9467", "0.0.0.0:9467", true},
		{"127.0.0.1:9467", "127.0.0.1:9468", false},
		{"127.0.0.1:9467", "10.1.2.3:9467", false},
		{"0.0.0.0:9467", "10.1.2.3:9467", true},
		{"0.0.0.0:9467", "10.9.9.9:9467", false},
		{"10.1.2.3:9467", "[::ffff:10.1.2.3]:9467", true},
	} {
		g := NewGuard(netip.MustParseAddrPort(tc.listen))
		g.localAddrs = local
		if got := g.Reaches(netip.MustParseAddrPort(tc.dst)); got != tc.want {
			t.Errorf("listener %s: Reaches(%s) = %v, want %v", tc.listen, tc.dst, got, tc.want)
		}
	}
	var none *Guard
	if none.Reaches(netip.MustParseAddrPort("127.0.0.1:1")) {
		t.Error("a nil Guard refuses")
	}
}
