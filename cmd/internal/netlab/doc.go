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
// netlab needs root. Tests call RequireRoot and RequireBinary first, so that a
// machine which cannot run them skips with a reason instead of failing.
package netlab
