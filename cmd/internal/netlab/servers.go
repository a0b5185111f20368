package netlab

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readyTimeout bounds how long a server may take to start listening.
const readyTimeout = 10 * time.Second

// RandomFile writes size random bytes to a new file in dir and returns its
// path and hex SHA-256.
func RandomFile(t testing.TB, dir string, size int64) (path, sha string) {
	t.Helper()
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	f, err := os.CreateTemp(dir, "random-*.bin")
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	defer f.Close()
	h := sha256.New()
	src := io.LimitReader(mrand.NewChaCha8(seed), size)
	if _, err := io.Copy(io.MultiWriter(f, h), src); err != nil {
		t.Fatalf("netlab: write %s: %v", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("netlab: write %s: %v", f.Name(), err)
	}
	return f.Name(), hex.EncodeToString(h.Sum(nil))
}

// Nginx is an nginx serving one random file on port 80 of every address of
// its namespace, IPv4 and IPv6.
type Nginx struct {
	*Proc
	// Path is the file's URL path, e.g. "/blob.bin".
	Path string
	// Size is the file's length in bytes.
	Size int64
	// SHA256 is the file's hex SHA-256.
	SHA256 string
	// AccessLog is the file nginx logs each request to, with the
	// client's address first.
	AccessLog string
}

// NginxPort is the port StartNginx listens on.
const NginxPort = 80

// StartNginx starts nginx in ns serving a random file of size bytes, with
// its configuration, logs and temporary files in a test directory.
func StartNginx(t testing.TB, ns *NS, size int64) *Nginx {
	t.Helper()
	RequireBinary(t, "nginx")
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	if err := os.Mkdir(www, 0o755); err != nil {
		t.Fatalf("netlab: %v", err)
	}
	file, sha := RandomFile(t, www, size)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConf(dir, www)), 0o644); err != nil {
		t.Fatalf("netlab: %v", err)
	}
	p := ns.Start(t, "nginx", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	if err := ns.WaitTCP(netip.AddrPortFrom(netip.IPv6Loopback(), NginxPort).String(), readyTimeout); err != nil {
		errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		t.Fatalf("netlab: nginx: %v\n%s\nerror.log:\n%s", err, p.Output(), errLog)
	}
	return &Nginx{Proc: p, Path: "/" + filepath.Base(file), Size: size, SHA256: sha, AccessLog: filepath.Join(dir, "access.log")}
}

// nginxConf keeps every file nginx writes inside dir, so that nothing under
// /var or /run is touched and parallel instances do not collide.
func nginxConf(dir, www string) string {
	return fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
	access_log %[1]s/access.log;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	sendfile on;
	server {
		listen %[3]d;
		listen [::]:%[3]d ipv6only=on;
		root %[2]s;
	}
}
`, dir, www, NginxPort)
}

// StartDNSMasq starts dnsmasq in ns answering on port 53 (UDP and TCP) of the
// listen addresses, with records mapping names (and their subdomains) to
// their A and AAAA addresses, and no other source of answers.
func StartDNSMasq(t testing.TB, ns *NS, listen []netip.Addr, records map[string][]netip.Addr) *Proc {
	t.Helper()
	RequireBinary(t, "dnsmasq")
	dir := t.TempDir()
	args := []string{
		"--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--bind-interfaces", "--user=root", "--group=root", "--log-facility=-",
		"--pid-file=" + filepath.Join(dir, "dnsmasq.pid"),
	}
	for _, a := range listen {
		args = append(args, "--listen-address="+a.String())
	}
	for name, addrs := range records {
		for _, addr := range addrs {
			args = append(args, fmt.Sprintf("--address=/%s/%s", name, addr))
		}
	}
	p := ns.Start(t, "dnsmasq", args...)
	for _, a := range listen {
		if err := ns.WaitTCP(netip.AddrPortFrom(a, 53).String(), readyTimeout); err != nil {
			t.Fatalf("netlab: dnsmasq: %v\n%s", err, p.Output())
		}
	}
	return p
}

// StartIperf3 starts "iperf3 -s" in ns, bound to addr and port.
func StartIperf3(t testing.TB, ns *NS, addr netip.Addr, port uint16) *Proc {
	t.Helper()
	RequireBinary(t, "iperf3")
	p := ns.Start(t, "iperf3", "-s", "-B", addr.String(), "-p", strconv.Itoa(int(port)))
	if err := ns.WaitTCP(netip.AddrPortFrom(addr, port).String(), readyTimeout); err != nil {
		t.Fatalf("netlab: iperf3: %v\n%s", err, p.Output())
	}
	return p
}

// StartPeer runs "peer serve" with args in ns (see the peer program for the
// listener flags) and waits until every listener is bound.
func StartPeer(t testing.TB, ns *NS, args ...string) *Proc {
	t.Helper()
	p := ns.Start(t, PeerPath(t), append([]string{"serve"}, args...)...)
	if err := p.WaitOutput("ready\n", readyTimeout); err != nil {
		t.Fatalf("netlab: peer: %v", err)
	}
	return p
}

// RunPeer runs a peer client command (args[0] is the subcommand) in ns with a
// 2 minute limit and returns its trimmed combined output.
func RunPeer(t testing.TB, ns *NS, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := ns.Run(ctx, PeerPath(t), args...)
	return strings.TrimSpace(out), err
}
