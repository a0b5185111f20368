package main_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

func TestPing(t *testing.T) {
	t.Parallel()
	netlab.RequireBinary(t, "ping")
	tp := newTopo(t)
	for _, fam := range families {
		t.Run("live/"+fam.name, func(t *testing.T) {
			addr := tp.srvAddr(fam.v6).String()
			out, err := runIn(t, tp.app, 10*time.Second, "ping", "-c", "2", "-W", "2", addr)
			if err != nil || !strings.Contains(out, " 2 received") {
				t.Fatalf("ping %s: want 2 replies, got err %v:\n%s", addr, err, out)
			}
		})
		t.Run("dead/"+fam.name, func(t *testing.T) {
			// Nobody holds the address: a gateway that answered pings
			// itself would be lying about reachability.
			addr := tp.deadAddr(fam.v6).String()
			out, err := runIn(t, tp.app, 10*time.Second, "ping", "-c", "2", "-W", "2", addr)
			if err == nil || !strings.Contains(out, " 0 received") {
				t.Fatalf("ping %s: want no reply, got err %v:\n%s", addr, err, out)
			}
		})
	}
}
