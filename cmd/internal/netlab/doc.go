// Package netlab builds throwaway network topologies for tests and benchmarks.
//
// Everything it makes (network namespaces, veth pairs, processes, generated
// files) is uniquely named, so tests may run in parallel, and is removed by
// the cleanup of the testing.TB that made it, even when the test fails.
// Namespaces are made with the ip(8) command; real servers (nginx, dnsmasq,
// iperf3 and the small peer program in ./peer) run inside them through
// "ip netns exec". The tungate binary and the peer program are built once per
// test binary run; call Main from TestMain to remove them afterwards.
//
// A typical test:
//
//	netlab.RequireRoot(t)
//	app, srv := netlab.NewNS(t, "app"), netlab.NewNS(t, "srv")
//	sub := netlab.NewSubnet(t)
//	netlab.Veth(t, netlab.Root(), srv,
//		[]netip.Prefix{sub.Prefix4(1)}, []netip.Prefix{sub.Prefix4(2)})
//	netlab.DefaultRoutes(t, srv, sub.V4(1))
//	netlab.StartTungate(t, "--netns", app.Name, "--device", "tun://"+netlab.UniqueName("tg"))
//	web := netlab.StartNginx(t, srv, 64<<20)
//	// ... curl http://10.200.N.2/<web.Path> inside app, compare web.SHA256.
//
// netlab needs root. Tests call RequireRoot and RequireBinary first, so that a
// machine which cannot run them skips with a reason instead of failing.
package netlab
