package hostroute

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// warnStrictRPFilter logs one line if strict reverse-path filtering is on
// for an interface without src_valid_mark: the filter then validates
// inbound sources with the capture rules, which point into the device, and
// drops replies of everything that leaves directly (tungate's own flows,
// exclusions, inbound connections). The sysctls are the namespace's own
// (/proc/sys/net belongs to the reader's network namespace); they are
// read, never changed.
func warnStrictRPFilter(log *slog.Logger, device string) {
	const dir = "/proc/sys/net/ipv4/conf"
	all := readSysctl(filepath.Join(dir, "all", "rp_filter"))
	allMark := readSysctl(filepath.Join(dir, "all", "src_valid_mark"))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var strict []string
	for _, e := range entries {
		name := e.Name()
		if name == "all" || name == "default" || name == "lo" || name == device {
			continue
		}
		// The effective values: the larger rp_filter of all and the
		// interface; src_valid_mark if either has it.
		rp := max(all, readSysctl(filepath.Join(dir, name, "rp_filter")))
		mark := allMark > 0 || readSysctl(filepath.Join(dir, name, "src_valid_mark")) > 0
		if rp == 1 && !mark {
			strict = append(strict, name)
		}
	}
	if len(strict) > 0 {
		log.Warn("auto-route: strict reverse-path filtering (rp_filter=1) will drop replies of direct traffic on these interfaces; set net.ipv4.conf.all.src_valid_mark=1 or rp_filter=2",
			"interfaces", strings.Join(strict, ","))
	}
}

// readSysctl returns the number in file, or 0.
func readSysctl(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}
