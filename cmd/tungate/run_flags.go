package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/tungate/tungate/forwarder/publish"
)

// runConfig is everything `tungate run` is told.
type runConfig struct {
	gw                gatewayConfig
	allowHostLoopback bool
	publish           portList
	netnsPath         string
	user              string
	command           []string
}

const runUsage = `Usage: tungate run [flags] -- CMD [ARGS...]

Run CMD in a network namespace of its own whose only way out is tungate:
it holds lo and a TUN device (198.18.0.1/24, fd74:6761:7465::1/64, default
routes) served by tungate. CMD keeps its terminal, working directory and
environment, and tungate exits with CMD's status (128+N if CMD died of
signal N). Without root, a user namespace maps your uid to itself.

Inside the namespace:
  198.18.0.2, fd74:6761:7465::2   DNS resolver (CMD's /etc/resolv.conf names
                                  it); queries go to --dns or to the
                                  servers of the host's /etc/resolv.conf
  198.18.0.3, fd74:6761:7465::3   the host's 127.0.0.1 and ::1, only with
                                  --allow-host-loopback (otherwise host
                                  loopback is unreachable in every form)

Flags:
`

// newRunFlags is the flag set of `tungate run`, bound to rc. The
// completions and the man page test read it too.
func newRunFlags(rc *runConfig) *pflag.FlagSet {
	fs := pflag.NewFlagSet("tungate run", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// Flags after the command are the command's.
	fs.SetInterspersed(false)
	addGatewayFlags(fs, &rc.gw)
	// CMD shares the terminal: only problems are worth printing there.
	rc.gw.logLevel.level = slog.LevelWarn
	fs.Lookup("log-level").DefValue = "warn"
	addDNSFlag(fs, &rc.gw, "DNS server for the namespace's resolver, ADDR[:PORT], repeatable (default: the nameservers of the host's /etc/resolv.conf)")
	fs.BoolVar(&rc.allowHostLoopback, "allow-host-loopback", false, "let 198.18.0.3 and fd74:6761:7465::3 inside the namespace reach the host's 127.0.0.1 and ::1")
	fs.VarP(&rc.publish, "publish", "p", "publish a port of the namespace on the host, [HOSTADDR:]HOSTPORT:NSPORT[/tcp|/udp], repeatable")
	fs.StringVar(&rc.netnsPath, "netns-path", "", "run no command: keep the namespace, bind-mounted at `PATH` (for nsenter or ip netns exec), until tungate is stopped; needs root")
	fs.StringVar(&rc.user, "user", "", "as root, run CMD as this user, `NAME|UID`, with its HOME, USER and LOGNAME, instead of root")
	fs.BoolP("help", "h", false, "show this help")
	return fs
}

// parseRunFlags parses `tungate run` arguments. It returns pflag.ErrHelp
// after printing help to stdout.
func parseRunFlags(args []string, stdout io.Writer) (*runConfig, error) {
	rc := &runConfig{}
	fs := newRunFlags(rc)
	if err := fs.Parse(args); err != nil {
		return nil, flagParseError(fmt.Errorf("run: %w", err))
	}
	if help, _ := fs.GetBool("help"); help {
		fmt.Fprintf(stdout, "%s%s", runUsage, fs.FlagUsages())
		return nil, pflag.ErrHelp
	}
	rc.command = fs.Args()
	switch {
	case len(rc.command) == 0 && rc.netnsPath == "":
		return nil, usageErrorf("run: no command: want tungate run [flags] -- CMD [ARGS...], or --netns-path PATH")
	case len(rc.command) > 0 && rc.netnsPath != "":
		return nil, usageErrorf("run: --netns-path runs no command, but %q was given", rc.command[0])
	case rc.netnsPath != "" && os.Geteuid() != 0:
		return nil, usageErrorf("run: --netns-path needs root: the namespace is bind-mounted in the host's mount namespace; run tungate run -- CMD instead, or as root")
	}
	if err := rc.gw.validate(); err != nil {
		return nil, err
	}
	return rc, nil
}

// portList is the repeatable --publish flag.
type portList struct{ values []publish.Port }

func (l *portList) String() string {
	s := make([]string, len(l.values))
	for i, v := range l.values {
		s[i] = v.String()
	}
	return strings.Join(s, ",")
}

func (l *portList) Set(s string) error {
	p, err := publish.ParsePort(s)
	if err != nil {
		return err
	}
	l.values = append(l.values, p)
	return nil
}

func (l *portList) Type() string { return "PORTS" }
