package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestObserveEmptyPaths: an empty --control, --flow-log or --pcap (a shell
// variable that was not set) is a usage error, in the gateway and in run,
// not a silent default or "off".
func TestObserveEmptyPaths(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--control", ""}, "PATH or none"},
		{[]string{"--control="}, "PATH or none"},
		{[]string{"--flow-log", ""}, "- for stderr"},
		{[]string{"--pcap", ""}, `"--pcap"`},
		{[]string{"run", "--control", "", "--", "true"}, "--control"},
	} {
		var stderr bytes.Buffer
		err := run(context.Background(), tc.args, &bytes.Buffer{}, &stderr)
		if code := exitCode(err, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.want) ||
			strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
			t.Errorf("%q: exit %d, %q; want %d and one line mentioning %q", tc.args, code, stderr.String(), exitUsage, tc.want)
		}
	}
}
