package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestFindInstanceOtherNetNS: a control socket whose instance closes every
// connection at once (one of another network namespace, as the shared
// /run/tungate holds) is not this namespace's instance; with only such
// sockets the error says where to run tungate flows.
func TestFindInstanceOtherNetNS(t *testing.T) {
	dir := t.TempDir()
	listen := func(name string, closeAtOnce bool) string {
		p := filepath.Join(dir, name)
		ln, err := net.Listen("unix", p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		if closeAtOnce {
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
		return p
	}
	listen("other.sock", true)
	_, err := findInstanceIn(dir)
	if err == nil || !strings.Contains(err.Error(), "other.sock") || !strings.Contains(err.Error(), "ip netns exec") {
		t.Errorf("only an instance of another namespace: %v; want an error naming it and where to run flows", err)
	}
	here := listen("here.sock", false)
	if got, err := findInstanceIn(dir); err != nil || got != here {
		t.Errorf("one instance here, one elsewhere: %q, %v; want %s", got, err, here)
	}
	_, err = newControlClient(filepath.Join(dir, "other.sock")).get(t.Context(), "/flows")
	if err == nil || !strings.Contains(err.Error(), "another network namespace") {
		t.Errorf("asking the instance of another namespace: %v; want an error that says why it closed", err)
	}
}
