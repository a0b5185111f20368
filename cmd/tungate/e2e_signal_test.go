package main_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

func TestSIGTERMCleanup(t *testing.T) {
	t.Parallel()
	if kernelMode() {
		t.Skip("tests tungate itself; TUNGATE_E2E_GATEWAY=kernel")
	}
	tp := newTopo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if out, err := tp.app.Run(ctx, "ip", "link", "show", "dev", tp.dev); err != nil || !strings.Contains(out, "UP") {
		t.Fatalf("device %s in %s while serving: want it up, got err %v:\n%s", tp.dev, tp.app, err, out)
	}
	routes, err := netlab.Routes(ctx, tp.app)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"default dev " + tp.dev} {
		if strings.Count(routes, want) != 2 {
			t.Fatalf("routes in %s while serving: want IPv4 and IPv6 %q, got:\n%s", tp.app, want, routes)
		}
	}

	// Stop fails the test unless tungate exits 0 within 3 s.
	took := tp.gw.Stop()
	t.Logf("exited %v after SIGTERM", took.Round(time.Millisecond))

	if out, err := tp.app.Run(ctx, "ip", "link", "show", "dev", tp.dev); err == nil {
		t.Errorf("device %s still exists in %s after exit:\n%s", tp.dev, tp.app, out)
	}
	routes, err = netlab.Routes(ctx, tp.app)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(routes, tp.dev) {
		t.Errorf("routes through %s left in %s after exit:\n%s", tp.dev, tp.app, routes)
	}
}
