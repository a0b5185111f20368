package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startDaemon runs a proxy binary until the test ends and waits until addr
// accepts connections.
func startDaemon(t *testing.T, addr, bin string, args ...string) {
	t.Helper()
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("%s not installed (%v): apt-get install it to run this test", bin, err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", bin, out.String())
		}
	})
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp4", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("%s did not listen on %s within 5s", bin, addr)
}

// httpGetThrough fetches a test server's page through d.
func httpGetThrough(t *testing.T, d Dialer, url string) string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func TestMicrosocks(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	}))
	defer web.Close()
	for _, auth := range []bool{false, true} {
		t.Run(fmt.Sprintf("auth=%v", auth), func(t *testing.T) {
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
			args := []string{"-i", "127.0.0.1", "-p", port(addr)}
			raw := "socks5://" + addr
			if auth {
				args = append(args, "-u", "tg", "-P", "pa ss")
				raw = "socks5://tg:pa%20ss@" + addr
			}
			startDaemon(t, addr, "/usr/bin/microsocks", args...)
			d := NewChain([]*Hop{mustParse(t, raw)}, &Direct{}, 2*time.Second)
			if got := httpGetThrough(t, d, web.URL+"/x"); got != "hello /x" {
				t.Fatalf("got %q, want %q", got, "hello /x")
			}
			closed := startEcho(t)
			closedAddr := closed.addr()
			closed.ln.Close()
			_, err := d.DialContext(testCtx(t), "tcp", closedAddr)
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("dial to a closed port through microsocks: %v, want ErrRefused", err)
			}
			if auth {
				bad := NewChain([]*Hop{mustParse(t, "socks5://tg:wrong@"+addr)}, &Direct{}, 2*time.Second)
				if _, err := bad.DialContext(testCtx(t), "tcp", closedAddr); !errors.Is(err, ErrAuth) {
					t.Fatalf("wrong password through microsocks: %v, want ErrAuth", err)
				}
			}
		})
	}
}

func TestDanteUDP(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("danted wants root to start: run the tests as root")
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	conf := filepath.Join(t.TempDir(), "danted.conf")
	err := os.WriteFile(conf, []byte(`logoutput: stderr
internal: 127.0.0.1 port = `+port(addr)+`
external: 127.0.0.1
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 command: connect udpassociate udpreply }
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	startDaemon(t, addr, "/usr/sbin/danted", "-f", conf, "-N", "1")
	d := NewChain([]*Hop{mustParse(t, "socks5://"+addr)}, &Direct{}, 2*time.Second)

	echo := startEcho(t)
	conn, err := d.DialContext(testCtx(t), "tcp", echo.addr())
	if err != nil {
		t.Fatal(err)
	}
	echoRoundTrip(t, conn, "tcp through dante")
	conn.Close()

	udpEcho := startUDPEcho(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	pc, err := d.(PacketDialer).DialPacket(ctx, "udp", udpEcho)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for i := range 3 {
		echoRoundTrip(t, pc, fmt.Sprintf("udp datagram %d through dante", i))
	}
}
