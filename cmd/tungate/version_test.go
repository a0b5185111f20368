package main

import (
	"runtime/debug"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	deps := []*debug.Module{
		{Path: "github.com/spf13/pflag", Version: "v1.0.5"},
		{Path: gvisorModule, Version: "v0.0.0-20260905035102-160fafc42237"},
	}
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "6b126c639cbd0123456789abcdef0123456789ab"
	const tail = " (go1.26.8, gvisor v0.0.0-20260905035102-160fafc42237)"
	cases := []struct {
		name     string
		override string
		bi       *debug.BuildInfo
		want     string
	}{
		{"go install", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}, Deps: deps}, "tungate v1.2.0" + tail},
		{"clean checkout", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Deps: deps, Settings: vcs(rev, "false")}, "tungate 6b126c639cbd" + tail},
		{"modified checkout", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Deps: deps, Settings: vcs(rev, "true")}, "tungate 6b126c639cbd-dirty" + tail},
		{"no vcs", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Deps: deps}, "tungate dev" + tail},
		{"ldflags override", "1.3.0-rc1", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}, Deps: deps, Settings: vcs(rev, "true")}, "tungate 1.3.0-rc1" + tail},
		{"replaced gvisor", "", &debug.BuildInfo{GoVersion: "go1.26.8", Deps: []*debug.Module{{Path: gvisorModule, Version: "v1", Replace: &debug.Module{Path: "../gvisor", Version: "(devel)"}}}}, "tungate dev (go1.26.8, gvisor (devel))"},
		{"checkout, Go 1.24+", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261201220816-4a1cbf0c0b27+dirty"}, Deps: deps, Settings: vcs(rev, "true")}, "tungate v0.0.0-20261201220816-4a1cbf0c0b27+dirty" + tail},
		{"no build info", "", nil, "tungate dev"},
	}
	for _, tc := range cases {
		if got := formatVersion(tc.override, tc.bi); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
