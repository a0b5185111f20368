// Command peer is the far end and the near end of netlab's end-to-end
// checks: servers and clients that verify every byte they exchange, so that
// a test only has to look at the exit status and a line of output.
//
//	peer serve [-tcp-echo ADDR]... [-tcp-sink ADDR]... [-tcp-txfirst ADDR]... [-udp-echo ADDR]...
//	peer send -addr ADDR -size N          upload N random bytes to a sink, half-close, check its sha256 reply
//	peer recvfirst -addr ADDR -size N     read a txfirst server's stream to EOF, then send N bytes
//	peer echo -addr ADDR -conns C -size N C concurrent echo round trips of N bytes
//	peer dial -addr ADDR                  connect and report the error, if any
//	peer udp -addr ADDR... -size N        echo datagrams from one socket, checking reply sources
//
// Clients exit 0 and print "ok ..." on success, and exit 1 with the reason
// otherwise. "serve" prints "ready" once every listener is bound, and a line
// for every txfirst connection it completes; it stops on SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("missing subcommand: serve, send, recvfirst, echo, dial or udp")
	}
	commands := map[string]func(context.Context, *flag.FlagSet, []string, io.Writer) error{
		"serve":     serve,
		"send":      send,
		"recvfirst": recvFirst,
		"echo":      echo,
		"dial":      dial,
		"udp":       udpEcho,
	}
	cmd := commands[args[0]]
	if cmd == nil {
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	return cmd(ctx, fs, args[1:], stdout)
}

// addrList is a repeatable flag.
type addrList []string

func (l *addrList) String() string     { return strings.Join(*l, ",") }
func (l *addrList) Set(s string) error { *l = append(*l, s); return nil }
