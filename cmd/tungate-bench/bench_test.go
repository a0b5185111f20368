package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestRatiosSameMetricOnly(t *testing.T) {
	r := &results{Metrics: metrics()}
	r.add("kernel", "conn_rate", 1000)
	r.add("tungate", "conn_rate", 200)
	r.add("tungate", "conn_rate", 600)
	r.add("tungate", "conn_rate", 400)
	r.add("pasta", "conn_rate", 800)
	r.add("kernel", "best_mtu", 65520)
	r.add("tungate", "best_mtu", 65000)
	r.finish(time.Second)
	if got := r.Ratios["conn_rate"]["tungate"]["kernel"]; got != 0.4 {
		t.Errorf("tungate/kernel = %v, want 0.4 (median 400 / 1000)", got)
	}
	if got := r.Ratios["conn_rate"]["tungate"]["pasta"]; got != 0.5 {
		t.Errorf("tungate/pasta = %v, want 0.5", got)
	}
	if _, ok := r.Ratios["best_mtu"]; ok {
		t.Error("best_mtu is a setting and must have no ratios")
	}
	var out strings.Builder
	r.printTable(&out)
	for _, want := range []string{"TCP connections (50 clients) (conn/s)", "tg/k", "tg/pasta", "0.40", "0.50"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestProcfsOfSelf(t *testing.T) {
	fields, err := statFields(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if fields[0] != "R" && fields[0] != "S" {
		t.Errorf("state field = %q, want R or S", fields[0])
	}
	before, err := cpuTimes(os.Getpid())
	if err != nil {
		t.Errorf("cpuTimes(self): %v", err)
	}
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
	}
	if after, err := cpuTimes(os.Getpid()); err != nil || after.since(before).total() < 0.05 || after.since(before).user <= 0 {
		t.Errorf("cpuTimes after 100 ms of spinning: %+v since %+v, %v; want at least 0.05 s more, some of it user", after, before, err)
	}
	rss, err := memoryBytes(os.Getpid(), "VmRSS")
	if err != nil || rss < 1<<20 {
		t.Errorf("memoryBytes(self, VmRSS) = %v, %v; want over 1 MiB", rss, err)
	}
	if _, err := memoryBytes(os.Getpid(), "VmNothing"); err == nil {
		t.Error("memoryBytes of a missing field: want an error")
	}
}

func TestFindDescendant(t *testing.T) {
	// sh keeps running as the parent of sleep because of the trailing "wait".
	cmd := exec.Command("sh", "-c", "sleep 30 & wait")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sh: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		pid, err := findDescendant(cmd.Process.Pid, "sleep")
		if err == nil {
			if pid == cmd.Process.Pid {
				t.Fatalf("found the root itself")
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return
		}
		if !errors.Is(err, errNotYet) || time.Now().After(deadline) {
			t.Fatalf("findDescendant: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestParseConfig(t *testing.T) {
	cfg, err := parseConfig([]string{"-quick", "-only", "kernel,pasta"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.runs != 1 || cfg.idleConns != 1000 || len(cfg.only) != 2 {
		t.Errorf("quick config = %+v", cfg)
	}
	for _, bad := range [][]string{{"-runs", "0"}, {"-nope"}, {"extra"}} {
		if _, err := parseConfig(bad, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("parseConfig(%q) = %v, want a usage error", bad, err)
		}
	}
}

func TestParseVariant(t *testing.T) {
	cfg, err := parseConfig([]string{"-variant", "mq2=--tun-queues 2  --cpus 2", "-variant", "c2=--cpus 2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.variants) != 2 || cfg.variants[0].name != "tungate-mq2" ||
		strings.Join(cfg.variants[0].flags, "|") != "--tun-queues|2|--cpus|2" || cfg.variants[1].name != "tungate-c2" {
		t.Fatalf("variants = %+v", cfg.variants)
	}
	ps := paths("/bin/true", 65520, cfg.variants)
	if len(ps) < 4 || ps[1].name != "tungate" || ps[2].name != "tungate-mq2" || !ps[2].variant || ps[3].name != "tungate-c2" {
		t.Fatalf("paths = %+v: want the variants right after tungate", ps)
	}
	if got := short("tungate-mq2"); got != "tg-mq2" {
		t.Errorf("short(tungate-mq2) = %q", got)
	}
	for _, bad := range []string{"mq2", "=--cpus 2", "MQ=--cpus 2", "a b=--cpus 2"} {
		if _, err := parseConfig([]string{"-variant", bad}, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("-variant %q: %v, want a usage error", bad, err)
		}
	}
}
