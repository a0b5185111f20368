package main_test

import (
	"strings"
	"testing"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// TestAutoRouteRefused: a priority or table that holds somebody else's rule
// or route, or a user without CAP_NET_ADMIN, stops tungate before it serves,
// with one line and exit status 1, and leaves every listing as it was
// (including the other rules).
func TestAutoRouteRefused(t *testing.T) {
	t.Parallel()
	l := newARLab(t)
	netlab.RequireBinary(t, "setpriv")
	dev := "tun://" + netlab.UniqueName("tgr")
	cases := []struct {
		name  string
		setup []string // an ip command run in H first, undone afterwards
		undo  []string
		cmd   []string
		want  string
	}{
		{"foreign rule in the block",
			[]string{"ip", "rule", "add", "priority", "9004", "lookup", "main"},
			[]string{"ip", "rule", "del", "priority", "9004", "lookup", "main"},
			[]string{netlab.TungatePath(t), "--device", dev, "--auto-route"}, "tungate did not add"},
		{"foreign route in the table",
			[]string{"ip", "-6", "route", "add", "blackhole", "2001:db8::/32", "table", "2022"},
			[]string{"ip", "-6", "route", "del", "blackhole", "2001:db8::/32", "table", "2022"},
			[]string{netlab.TungatePath(t), "--device", dev, "--auto-route"}, "tungate did not add"},
		{"foreign rule pointing at the table",
			[]string{"ip", "rule", "add", "priority", "100", "to", "192.0.2.0/24", "lookup", "2022"},
			[]string{"ip", "rule", "del", "priority", "100", "to", "192.0.2.0/24", "lookup", "2022"},
			[]string{netlab.TungatePath(t), "--device", dev, "--auto-route"}, "tungate did not add"},
		{"no CAP_NET_ADMIN", nil, nil,
			[]string{"setpriv", "--reuid", "1234", "--regid", "1234", "--clear-groups", "--inh-caps=-all", netlab.TungatePath(t), "--device", dev, "--auto-route"}, "tungate: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				l.host.MustRun(t, tc.setup[0], tc.setup[1:]...)
				t.Cleanup(func() { l.host.MustRun(t, tc.undo[0], tc.undo[1:]...) })
			}
			before := l.tables(t)
			out, err := runIn(t, l.host, netlab.ServingTimeout, tc.cmd[0], tc.cmd[1:]...)
			if err == nil || !strings.Contains(out, tc.want) || strings.Count(out, "\n") > 0 || strings.Contains(out, "serving") {
				t.Errorf("%s: %v with output:\n%s\nwant a failure, one line mentioning %q", tc.name, err, out, tc.want)
			}
			if code := exitStatus(err); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if after := l.tables(t); after != before {
				t.Errorf("the refused start changed the tables.\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}
