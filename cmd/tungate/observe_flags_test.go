package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"12345", 12345}, {"100MB", 100_000_000}, {"100 MB", 100_000_000}, {"1GiB", 1 << 30},
		{"1gib", 1 << 30}, {"64KiB", 64 << 10}, {"1.5MB", 1_500_000}, {"2k", 2000}, {"10B", 10}, {"3TB", 3e12},
	} {
		if got, err := parseSize(tc.in); err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "MB", "-1", "10 XB", "1e3", "1.2.3MB", "999999999TiB"} {
		if got, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", bad, got)
		}
	}
}

func TestMetricsAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"9467", "127.0.0.1:9467"}, {"127.0.0.1:9000", "127.0.0.1:9000"}, {"[::1]:9467", "[::1]:9467"},
		{":9467", "[::]:9467"}, {"0.0.0.0:80", "0.0.0.0:80"},
	} {
		var m metricsAddr
		if err := m.Set(tc.in); err != nil || m.String() != tc.want {
			t.Errorf("--metrics %s = %s, %v; want %s", tc.in, m.String(), err, tc.want)
		}
	}
	for _, bad := range []string{"0", "70000", "localhost:9467", "127.0.0.1", "[fe80::1%eth0]:1", "x"} {
		var m metricsAddr
		if err := m.Set(bad); err == nil {
			t.Errorf("--metrics %s accepted as %s", bad, m.String())
		}
	}
}

func TestObserveFlagDefaults(t *testing.T) {
	var c observeConfig
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	addObserveFlags(fs, &c)
	if err := fs.Parse([]string{"--pcap", "x.pcap", "--pcap-max-size", "1GiB"}); err != nil {
		t.Fatal(err)
	}
	if c.pcapSnapLen != 262144 || c.pcapMaxSize != 1<<30 || c.metrics.addr.IsValid() || c.control != "" || c.flowLogQueue != 4096 {
		t.Errorf("parsed %+v", c)
	}
	if err := fs.Parse([]string{"--pcap-snaplen", "10"}); err == nil {
		t.Error("--pcap-snaplen 10 accepted")
	}
}

func TestObserveUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--metrics", "0"}, "--metrics"},
		{[]string{"--metrics", "localhost:9467"}, "127.0.0.1:9467"},
		{[]string{"--pcap-max-size", "10XB"}, "100MB"},
		{[]string{"--pcap-snaplen", "1"}, "--pcap-snaplen"},
		{[]string{"--flow-log-queue", "0"}, "--flow-log-queue"},
		{[]string{"run", "--pcap-max-size", "x", "--", "true"}, "--pcap-max-size"},
		{[]string{"flows", "extra"}, "unexpected argument"},
		{[]string{"flows", "--close", "1", "--watch"}, "--watch"},
		{[]string{"flows", "--close", "x"}, "--close"},
	} {
		var stderr bytes.Buffer
		err := run(context.Background(), tc.args, &bytes.Buffer{}, &stderr)
		if code := exitCode(err, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, %q; want %d mentioning %q", tc.args, code, stderr.String(), exitUsage, tc.want)
		}
	}
}
