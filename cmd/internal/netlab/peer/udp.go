package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// udpEcho sends a distinct datagram to each address from one unconnected
// socket and checks that each echo comes back from the address it was sent
// to, with the same bytes. Lost datagrams are resent, up to -tries times.
func udpEcho(ctx context.Context, fs *flag.FlagSet, args []string, stdout io.Writer) error {
	var addrs addrList
	fs.Var(&addrs, "addr", "echo server `address` (repeatable)")
	size := fs.Int("size", 1400, "datagram size")
	tries := fs.Int("tries", 3, "attempts per datagram")
	wait := fs.Duration("wait", time.Second, "how long to wait for each echo")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(addrs) == 0 {
		return fmt.Errorf("no -addr")
	}
	dsts := make([]netip.AddrPort, len(addrs))
	for i, a := range addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return err
		}
		dsts[i] = ap
	}
	network := "udp4"
	if dsts[0].Addr().Is6() {
		network = "udp6"
	}
	pc, err := net.ListenUDP(network, nil)
	if err != nil {
		return err
	}
	defer pc.Close()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()

	// Each payload starts with its destination's index, so a reply can be
	// matched to where it should have come from.
	payloads := make([][]byte, len(dsts))
	for i := range dsts {
		payloads[i] = make([]byte, *size)
		_, _ = io.ReadFull(randomReader(int64(*size)), payloads[i])
		payloads[i][0] = byte(i)
	}
	answered := make([]bool, len(dsts))
	buf := make([]byte, 65536)
	for try := 0; try < *tries; try++ {
		for i, dst := range dsts {
			if !answered[i] {
				if _, err := pc.WriteToUDPAddrPort(payloads[i], dst); err != nil {
					return fmt.Errorf("send to %s: %w", dst, err)
				}
			}
		}
		_ = pc.SetReadDeadline(time.Now().Add(*wait))
		for !all(answered) {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				break // timeout: resend what is missing
			}
			got := buf[:n]
			if n == 0 || int(got[0]) >= len(dsts) {
				return fmt.Errorf("unexpected %d-byte datagram from %s", n, from)
			}
			i := got[0]
			if want := dsts[i]; from.Addr().Unmap() != want.Addr() || from.Port() != want.Port() {
				return fmt.Errorf("echo of the datagram sent to %s came from %s", want, from)
			}
			if !bytes.Equal(got, payloads[i]) {
				return fmt.Errorf("echo from %s differs: sent %d bytes, got %d", from, len(payloads[i]), n)
			}
			answered[i] = true
		}
		if all(answered) {
			fmt.Fprintf(stdout, "ok %d echoes of %d bytes\n", len(dsts), *size)
			return nil
		}
	}
	return fmt.Errorf("no echo after %d tries from %v (answered: %v)", *tries, dsts, answered)
}

func all(bs []bool) bool {
	for _, b := range bs {
		if !b {
			return false
		}
	}
	return true
}
