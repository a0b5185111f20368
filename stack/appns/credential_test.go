package appns

import (
	"slices"
	"testing"
)

func TestCredentialEnv(t *testing.T) {
	c := &Credential{UID: 65534, GID: 65534, Name: "nobody", Home: "/nonexistent"}
	got := c.Env([]string{"HOME=/root", "PATH=/usr/bin", "USER=root", "TERM=xterm", "LOGNAME=root"})
	want := []string{"PATH=/usr/bin", "TERM=xterm", "HOME=/nonexistent", "USER=nobody", "LOGNAME=nobody"}
	if !slices.Equal(got, want) {
		t.Errorf("Env = %q, want %q", got, want)
	}
	// A uid with no passwd entry has no name or home: nothing is invented.
	bare := &Credential{UID: 4242, GID: 4242}
	if got := bare.Env([]string{"HOME=/root"}); !slices.Equal(got, []string{"HOME=/root"}) {
		t.Errorf("Env without name or home = %q, want the environment unchanged", got)
	}
}

func TestLookupUserFillsNameAndHome(t *testing.T) {
	c, err := LookupUser("root")
	if err != nil {
		t.Skipf("no root entry in the user database: %v", err)
	}
	if c.UID != 0 || c.Name != "root" || c.Home == "" {
		t.Errorf("LookupUser(root) = %+v, want uid 0, name root and a home", c)
	}
}
