package appns

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"
	"syscall"
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

// procCredential is c for the process that runs the command.
func (c *Credential) procCredential() *syscall.Credential {
	groups := c.Groups
	if len(groups) == 0 {
		groups = []uint32{c.GID}
	}
	return &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: groups}
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
