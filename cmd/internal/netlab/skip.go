package netlab

import (
	"os"
	"os/exec"
	"testing"
)

// aptPackages names the Debian package that provides each binary netlab runs,
// so that a skip message says what to install.
var aptPackages = map[string]string{
	"ip":         "iproute2",
	"nginx":      "nginx-light",
	"dnsmasq":    "dnsmasq-base",
	"iperf3":     "iperf3",
	"curl":       "curl",
	"dig":        "dnsutils",
	"ping":       "iputils-ping",
	"setpriv":    "util-linux",
	"unshare":    "util-linux",
	"danted":     "dante-server",
	"sshd":       "openssh-server",
	"ssh":        "openssh-client",
	"ssh-keygen": "openssh-client",
	"tcpdump":    "tcpdump",
	"socat":      "socat",
	"microsocks": "microsocks",
	"python3":    "python3",
	"getent":     "libc-bin",
	"useradd":    "passwd",
	"nft":        "nftables",
	"go":         "golang (or put the go command on PATH)",
}

// RequireRoot skips the test unless it runs as root, which creating
// namespaces, links and TUN devices needs.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it creates network namespaces, veth pairs and TUN devices")
	}
	RequireBinary(t, "ip")
}

// RequireBinary skips the test unless name is on PATH, naming the apt package
// to install.
func RequireBinary(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		pkg := aptPackages[name]
		if pkg == "" {
			pkg = name
		}
		t.Skipf("needs %s on PATH: apt-get install %s", name, pkg)
	}
}
