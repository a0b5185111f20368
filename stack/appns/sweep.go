package appns

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// sweepRounds bounds how often killAllIn looks again for processes that
// forked while it was killing their parents.
const sweepRounds = 20

// killAllIn sends SIGKILL to every process whose network namespace is ns
// (what the command left running in the background), until none is left.
// ns must stay open meanwhile, so that its inode number cannot be reused by
// an unrelated namespace.
func killAllIn(ns *os.File) error {
	var want unix.Stat_t
	if err := unix.Fstat(int(ns.Fd()), &want); err != nil {
		return fmt.Errorf("stat network namespace: %w", err)
	}
	for round := 0; round < sweepRounds; round++ {
		pids, err := pidsIn(want.Dev, want.Ino)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("processes left in the namespace keep forking: gave up killing them")
}

// pidsIn lists the processes (not zombies) in the namespace with this
// device and inode number.
func pidsIn(dev, ino uint64) ([]int, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	self := os.Getpid()
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid == self {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+name+"/ns/net", &st) != nil || st.Dev != dev || st.Ino != ino {
			continue
		}
		if zombie(name) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// zombie reports whether the process has exited and waits for its parent.
func zombie(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses and may
	// itself contain ") ".
	for i := len(b) - 1; i > 0; i-- {
		if b[i] == ')' {
			return i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
		}
	}
	return false
}
