package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// version, when set at build time with -ldflags "-X main.version=...",
// overrides the version read from the build information.
var version = ""

// gvisorModule is the module whose version --version reports next to Go's.
const gvisorModule = "gvisor.dev/gvisor"

// versionLine is what --version prints.
func versionLine() string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(version, bi)
}

// formatVersion builds the --version line from an -ldflags override (may be
// empty) and the build information (may be nil): "tungate VERSION (GO,
// gvisor GVISOR)". VERSION is, in order of preference, the override, the
// main module's version (what `go install module@version` records; in a
// checkout, Go 1.24 and later record a pseudo-version naming the commit,
// "+dirty" if the tree had changes), or the VCS revision (12 hex digits,
// "-dirty" if the tree had changes) where Go recorded "(devel)"; else "dev".
func formatVersion(override string, bi *debug.BuildInfo) string {
	v := override
	var extra []string
	if bi != nil {
		if v == "" {
			v = moduleVersion(bi)
		}
		extra = append(extra, bi.GoVersion)
		for _, dep := range bi.Deps {
			if dep.Path == gvisorModule {
				if dep.Replace != nil {
					dep = dep.Replace
				}
				extra = append(extra, "gvisor "+dep.Version)
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if len(extra) == 0 {
		return "tungate " + v
	}
	return fmt.Sprintf("tungate %s (%s)", v, strings.Join(extra, ", "))
}

// moduleVersion is the main module's version, or its VCS revision when it
// was built from a checkout (where the module version is "(devel)"), or "".
func moduleVersion(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return ""
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}
