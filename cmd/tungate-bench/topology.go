package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// Addresses of the namespaces every path shares. The server's address is
// the only target any client ever dials.
const (
	routerAddr     = "10.201.2.1/24"
	serverAddr     = "10.201.2.2/24"
	serverIP       = "10.201.2.2"
	routerGateway  = "10.201.2.254" // absent; gives pasta a default route that is not the server
	kernelClientIP = "10.201.1.2/24"
	kernelRouterIP = "10.201.1.1/24"
	kernelGateway  = "10.201.1.1"
)

// topology is the router and server namespaces shared by all paths, plus
// the per-path client namespaces, all named after a unique prefix.
type topology struct {
	prefix string
	router string
	server string
	// netns lists every namespace still to delete, oldest first.
	netns []string
}

// newTopology creates router <-veth-> server. The router namespace is where
// gateways run, so their outbound dials reach the server over the veth.
func newTopology(ctx context.Context) (*topology, error) {
	prefix := fmt.Sprintf("tgb%d", os.Getpid())
	t := &topology{prefix: prefix, router: prefix + "-router", server: prefix + "-server"}
	err := t.build(ctx)
	if err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *topology) build(ctx context.Context) error {
	for _, ns := range []string{t.router, t.server} {
		if err := t.addNetns(ctx, ns); err != nil {
			return err
		}
	}
	rs, sr := t.prefix+"rs", t.prefix+"sr"
	steps := [][]string{
		{"link", "add", rs, "netns", t.router, "type", "veth", "peer", "name", sr, "netns", t.server},
		{"-n", t.router, "addr", "add", routerAddr, "dev", rs},
		{"-n", t.server, "addr", "add", serverAddr, "dev", sr},
		{"-n", t.router, "link", "set", rs, "up"},
		{"-n", t.server, "link", "set", sr, "up"},
		{"-n", t.router, "route", "add", "default", "via", routerGateway, "dev", rs},
		{"-n", t.server, "route", "add", "default", "via", "10.201.2.1", "dev", sr},
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return err
		}
	}
	if err := sysctl(ctx, netnsPath(t.router), "net.ipv4.ip_forward", "1"); err != nil {
		return err
	}
	return widenPorts(ctx, netnsPath(t.router))
}

// setCoreMTU sets the MTU of the router <-> server veth.
func (t *topology) setCoreMTU(ctx context.Context, mtu int) error {
	m := fmt.Sprint(mtu)
	if err := ip(ctx, "-n", t.router, "link", "set", t.prefix+"rs", "mtu", m); err != nil {
		return err
	}
	return ip(ctx, "-n", t.server, "link", "set", t.prefix+"sr", "mtu", m)
}

// addClient creates an empty client namespace (loopback up, wide port range).
func (t *topology) addClient(ctx context.Context, kind string) (string, error) {
	name := t.prefix + "-" + kind
	if err := t.addNetns(ctx, name); err != nil {
		return name, err
	}
	return name, widenPorts(ctx, netnsPath(name))
}

// addKernelClient creates a client namespace wired to the router by a veth,
// with the router as its default gateway.
func (t *topology) addKernelClient(ctx context.Context, mtu int) (string, error) {
	name, err := t.addClient(ctx, "kernel")
	if err != nil {
		return name, err
	}
	cr, rc, m := t.prefix+"cr", t.prefix+"rc", fmt.Sprint(mtu)
	steps := [][]string{
		{"link", "add", cr, "netns", name, "mtu", m, "type", "veth", "peer", "name", rc, "netns", t.router, "mtu", m},
		{"-n", name, "addr", "add", kernelClientIP, "dev", cr},
		{"-n", t.router, "addr", "add", kernelRouterIP, "dev", rc},
		{"-n", name, "link", "set", cr, "up"},
		{"-n", t.router, "link", "set", rc, "up"},
		{"-n", name, "route", "add", "default", "via", kernelGateway, "dev", cr},
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return name, err
		}
	}
	return name, nil
}

func (t *topology) addNetns(ctx context.Context, name string) error {
	if err := ip(ctx, "netns", "add", name); err != nil {
		return err
	}
	t.netns = append(t.netns, name)
	return ip(ctx, "-n", name, "link", "set", "lo", "up")
}

// delNetns deletes one namespace this topology made; deleting it also
// removes its veths and TUN or tap devices. Other names are ignored.
func (t *topology) delNetns(name string) {
	i := slices.Index(t.netns, name)
	if i < 0 {
		return
	}
	t.netns = slices.Delete(t.netns, i, i+1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = ip(ctx, "netns", "del", name)
}

// Close deletes every namespace still present, newest first. It runs on a
// fresh context so that it still works after Ctrl-C.
func (t *topology) Close() {
	for len(t.netns) > 0 {
		t.delNetns(t.netns[len(t.netns)-1])
	}
}

// netnsPath is where ip-netns(8) binds a named namespace.
func netnsPath(name string) string { return "/run/netns/" + name }

// ip runs ip(8) and returns its stderr in the error.
func ip(ctx context.Context, args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// widenPorts gives the namespace at nsPath a wide local port range. Each
// short connection leaves a client port in TIME_WAIT for a minute; with the
// default 28,000 ports the kernel's search for a free one slows connect(2)
// long before the ports run out, which halved the connection rate of a
// namespace that kept the default. Every client namespace gets the same
// range, so the paths differ only in the gateway.
func widenPorts(ctx context.Context, nsPath string) error {
	return sysctl(ctx, nsPath, "net.ipv4.ip_local_port_range", "1024 65000")
}

// sysctl sets a namespaced sysctl inside the namespace at path nsPath only
// (/proc/sys/net resolves to the namespace of the process that opens it).
func sysctl(ctx context.Context, nsPath, key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nsenter", "--net="+nsPath, "--", "sh", "-c", `printf '%s\n' "$1" > "$2"`, "sh", value, path)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("set %s in netns %s: %w: %s", key, nsPath, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
