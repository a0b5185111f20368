package forwarder

import (
	"errors"
	"log/slog"

	"github.com/tungate/tungate/forwarder/proxy"
)

// warnUDPRefused logs one warning per refusal when the SOCKS5 proxy refuses
// UDP ASSOCIATE, naming the flags that fix it, and reports whether err was
// such a refusal. The chain asks the proxy again only after
// proxy.UDPRefusalMemory, so the warning repeats at most that often; the
// dials it refuses meanwhile (ErrUDPRefusedRecently) are not logged.
func warnUDPRefused(log *slog.Logger, address string, err error) bool {
	if !errors.Is(err, proxy.ErrUDPRefused) {
		return false
	}
	if errors.Is(err, proxy.ErrUDPRefusedRecently) {
		return true
	}
	hop := ""
	if he, ok := errors.AsType[*proxy.HopError](err); ok {
		hop = he.Hop
	}
	log.Warn("the proxy refuses UDP (SOCKS5 UDP ASSOCIATE: command not supported); apps get ICMP port unreachable for UDP, and the proxy is asked again after "+
		proxy.UDPRefusalMemory.String()+"; use --udp block (no UDP) or --udp direct (UDP from host sockets, around the proxy)",
		"proxy", hop, "dst", address, "err", err)
	return true
}
