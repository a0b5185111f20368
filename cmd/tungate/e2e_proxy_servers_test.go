package main_test

// Real proxy servers for the proxy tests (dante, microsocks, OpenSSH's
// dynamic forwarding), each started in the lab's server namespace with its
// configuration in a test directory.

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// Ports inside the server namespace.
const (
	portDante        = 1080
	portDanteAuth    = 1081
	portMicrosocks   = 1082
	portMicroAuth    = 1083
	portHangingProxy = 1090
	portDeadProxy    = 1099 // nobody listens
	portSSH          = 22
)

// dante is a running danted; log is the file it logs every connect to.
type dante struct {
	*netlab.Proc
	log string
}

// startDante starts danted on the lab's server address and port. With
// user set, clients must authenticate with that system user's password
// (RFC 1929); see addSystemUser.
func (l *proxyLab) startDante(t testing.TB, port uint16, user bool) *dante {
	t.Helper()
	netlab.RequireBinary(t, "danted")
	dir := t.TempDir()
	method := "none"
	if user {
		method = "username"
	}
	logFile := filepath.Join(dir, "danted.log")
	path := filepath.Join(dir, "danted.conf")
	writeTestdataTemplate(t, "dante.conf.tmpl", path, map[string]any{
		"Log": logFile, "Addr4": l.srvAddr(false), "Addr6": l.srvAddr(true), "Port": port,
		"External": l.srvVeth, "Method": method,
	})
	p := l.srv.Start(t, "danted", "-f", path, "-p", filepath.Join(dir, "danted.pid"))
	if err := l.srv.WaitTCP(netip.AddrPortFrom(l.srvAddr(false), port).String(), 10*time.Second); err != nil {
		b, _ := os.ReadFile(logFile)
		t.Fatalf("danted: %v\n%s\n%s", err, p.Output(), b)
	}
	return &dante{Proc: p, log: logFile}
}

// Log returns what dante has logged so far.
func (d *dante) Log() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

// startMicrosocks starts microsocks on the lab's server address and port,
// with username/password authentication if user is not empty.
func (l *proxyLab) startMicrosocks(t testing.TB, port uint16, user, pass string) *netlab.Proc {
	t.Helper()
	netlab.RequireBinary(t, "microsocks")
	args := []string{"-i", l.srvAddr(false).String(), "-p", strconv.Itoa(int(port))}
	if user != "" {
		args = append(args, "-u", user, "-P", pass)
	}
	p := l.srv.Start(t, "microsocks", args...)
	if err := l.srv.WaitTCP(netip.AddrPortFrom(l.srvAddr(false), port).String(), 10*time.Second); err != nil {
		t.Fatalf("microsocks: %v\n%s", err, p.Output())
	}
	return p
}

// startSSHDynamic runs sshd in the server namespace and "ssh -D" in the
// root namespace, and returns the address of ssh's SOCKS listener.
func (l *proxyLab) startSSHDynamic(t *testing.T) netip.AddrPort {
	t.Helper()
	netlab.RequireBinary(t, "sshd")
	netlab.RequireBinary(t, "ssh")
	netlab.RequireBinary(t, "ssh-keygen")
	dir := t.TempDir()
	hostKey, userKey := filepath.Join(dir, "host_key"), filepath.Join(dir, "user_key")
	for _, k := range []string{hostKey, userKey} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, err := os.ReadFile(userKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "sshd_config")
	writeTestdataTemplate(t, "sshd_config.tmpl", conf, map[string]any{
		"Listen":  netip.AddrPortFrom(l.srvAddr(false), portSSH),
		"HostKey": hostKey, "AuthorizedKeys": authorized, "PidFile": filepath.Join(dir, "sshd.pid"),
	})
	// sshd insists on its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	sshd := l.srv.Start(t, "/usr/sbin/sshd", "-D", "-e", "-f", conf)
	if err := l.srv.WaitTCP(netip.AddrPortFrom(l.srvAddr(false), portSSH).String(), 10*time.Second); err != nil {
		t.Fatalf("sshd: %v\n%s", err, sshd.Output())
	}
	socks := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freeLoopbackPort(t))
	ssh := netlab.Root().Start(t, "ssh", "-N", "-D", socks.String(), "-i", userKey,
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-o", "ExitOnForwardFailure=yes", "root@"+l.srvAddr(false).String())
	if err := netlab.Root().WaitTCP(socks.String(), 15*time.Second); err != nil {
		t.Fatalf("ssh -D: %v\n%s\nsshd:\n%s", err, ssh.Output(), sshd.Output())
	}
	return socks
}

// writeTestdataTemplate fills in the template testdata/NAME (at the top of
// the module) with data and writes it to path.
func writeTestdataTemplate(t testing.TB, name, path string, data any) {
	t.Helper()
	tmpl, err := template.ParseFiles(filepath.Join("..", "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	err = tmpl.Execute(f, data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("write %s from testdata/%s: %v", path, name, err)
	}
}

// freeLoopbackPort returns a TCP port nobody listens on at 127.0.0.1 now.
func freeLoopbackPort(t *testing.T) uint16 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// startHangingProxy listens on the lab's server address and port, accepts
// connections and never answers: a proxy that holds a flow unless tungate
// has a handshake deadline.
func (l *proxyLab) startHangingProxy(t *testing.T, port uint16) {
	t.Helper()
	var ln net.Listener
	err := l.srv.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(l.srvAddr(false), port).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var held []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range held {
			c.Close()
		}
	})
}

// addSystemUser creates a system user (no home, no shell) with password,
// for dante's username method, which checks the system's password
// database; it is deleted on cleanup.
func addSystemUser(t *testing.T, password string) string {
	t.Helper()
	netlab.RequireBinary(t, "useradd")
	name := netlab.UniqueName("tgpx")
	if out, err := exec.Command("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
	})
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(name + ":" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v\n%s", err, out)
	}
	return name
}
