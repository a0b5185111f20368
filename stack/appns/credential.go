package appns

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Credential is the user the command runs as when tungate runs as root and
// is told to drop privileges (--user).
type Credential struct {
	UID, GID uint32
	Groups   []uint32
	// Name and Home are the user's name and home directory, which the
	// command's HOME, USER and LOGNAME take (as runuser(1) sets them), so
	// that it does not write to root's home.
	Name, Home string
}

// LookupUser resolves a user name or numeric uid through the system's user
// database, with the user's primary and supplementary groups.
func LookupUser(name string) (*Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if _, numErr := strconv.ParseUint(name, 10, 32); numErr != nil {
			return nil, fmt.Errorf("user %q: %w", name, err)
		}
		if u, err = user.LookupId(name); err != nil {
			return nil, fmt.Errorf("user %q: %w", name, err)
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %q has a non-numeric uid %q", name, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %q has a non-numeric gid %q", name, u.Gid)
	}
	c := &Credential{UID: uint32(uid), GID: uint32(gid), Name: u.Username, Home: u.HomeDir}
	ids, err := u.GroupIds()
	if err != nil {
		ids = []string{u.Gid}
	}
	for _, id := range ids {
		if g, err := strconv.ParseUint(id, 10, 32); err == nil {
			c.Groups = append(c.Groups, uint32(g))
		}
	}
	return c, nil
}

// apply switches the calling thread (only that one: it is about to exec)
// to c. The raw system calls keep the change on this thread; Go's own
// setuid would change all threads, which needs a runtime without cgo.
func (c *Credential) apply() error {
	groups := c.Groups
	if len(groups) == 0 {
		groups = []uint32{c.GID}
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(unsafe.Pointer(&groups[0])), 0); e != 0 {
		return fmt.Errorf("set groups of uid %d: %w", c.UID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(c.GID), uintptr(c.GID), uintptr(c.GID)); e != 0 {
		return fmt.Errorf("set gid %d: %w", c.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(c.UID), uintptr(c.UID), uintptr(c.UID)); e != 0 {
		return fmt.Errorf("set uid %d: %w", c.UID, e)
	}
	return nil
}

// Env returns environ with HOME, USER and LOGNAME set for c, where c knows
// them; the rest of the environment is kept.
func (c *Credential) Env(environ []string) []string {
	set := map[string]string{}
	if c.Home != "" {
		set["HOME"] = c.Home
	}
	if c.Name != "" {
		set["USER"] = c.Name
		set["LOGNAME"] = c.Name
	}
	out := make([]string, 0, len(environ)+len(set))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			out = append(out, kv)
		}
	}
	for _, k := range []string{"HOME", "USER", "LOGNAME"} {
		if v, ok := set[k]; ok {
			out = append(out, k+"="+v)
		}
	}
	return out
}
