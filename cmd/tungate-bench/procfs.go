package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuTime is the CPU time a process has used (all its threads, not its
// children), in seconds.
type cpuTime struct{ user, system float64 }

func (c cpuTime) total() float64 { return c.user + c.system }

// since is the CPU time used between then and c.
func (c cpuTime) since(then cpuTime) cpuTime {
	return cpuTime{c.user - then.user, c.system - then.system}
}

// cpuTimes reads process pid's CPU time.
func cpuTimes(pid int) (cpuTime, error) {
	fields, err := statFields(pid)
	if err != nil {
		return cpuTime{}, err
	}
	// After "pid (comm)", utime and stime are fields 14 and 15 of stat(5),
	// i.e. indexes 11 and 12 of what follows the comm.
	if len(fields) < 13 {
		return cpuTime{}, fmt.Errorf("read cpu time of pid %d: short stat line", pid)
	}
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return cpuTime{}, fmt.Errorf("read cpu time of pid %d: bad utime/stime %q %q", pid, fields[11], fields[12])
	}
	return cpuTime{float64(utime) / clockTicks, float64(stime) / clockTicks}, nil
}

// statFields returns the fields of /proc/PID/stat after "pid (comm)"; the
// comm may itself contain spaces and parentheses.
func statFields(pid int) ([]string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	end := bytes.LastIndexByte(raw, ')')
	if end < 0 {
		return nil, fmt.Errorf("parse /proc/%d/stat: no ')'", pid)
	}
	return strings.Fields(string(raw[end+1:])), nil
}

// memoryBytes reads a "VmXXX:  N kB" field of /proc/PID/status in bytes.
func memoryBytes(pid int, field string) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		rest, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s of pid %d: %w", field, pid, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// errNotYet is returned while a process has not appeared yet.
var errNotYet = errors.New("not started yet")

// findDescendant returns the pid of a descendant of root whose comm is
// comm, or errNotYet.
func findDescendant(root int, comm string) (int, error) {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	parent := map[int]int{}
	var matches []int
	for _, s := range stats {
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(s)))
		if err != nil {
			continue
		}
		fields, err := statFields(pid)
		if err != nil || len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		parent[pid] = ppid
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(raw)) == comm {
			matches = append(matches, pid)
		}
	}
	for _, pid := range matches {
		for p := parent[pid]; p > 1; p = parent[p] {
			if p == root {
				return pid, nil
			}
		}
	}
	return 0, errNotYet
}
