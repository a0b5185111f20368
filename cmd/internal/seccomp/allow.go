package seccomp

// The system calls tungate makes once it is set up, by who needs them.
// Found by tracing the gateway and `tungate run` through the end-to-end
// tests with the filter in log mode (README, "Least privilege"), plus the
// Go runtime's rare paths that no test reaches (a thread started late, a
// crash, a CPU profile). Names are the kernel's, as in the library's
// tables; a name the architecture lacks is an error at assembly, which the
// unit tests catch for every architecture listed.

// common is what every architecture allows, under the same names, in
// groups.
func common() [][]string {
	return [][]string{
		// The hot path first: the library matches in list order, and the
		// kernel skips the filter altogether for a call it has seen always
		// allowed (its per-filter action cache), so order matters only on
		// kernels before 5.11.
		{"read", "write", "readv", "writev", "recvmmsg", "sendmmsg", "recvfrom", "sendto",
			"recvmsg", "sendmsg", "epoll_pwait", "futex", "nanosleep", "sched_yield",
			"getpid", "tgkill", "gettid", "clock_gettime"},
		// Go runtime: memory, threads, signals, timers (preemption, CPU
		// profiles), random numbers, GOMAXPROCS updates.
		{"mmap", "munmap", "madvise", "mprotect", "mremap", "mincore", "brk",
			"clone", "clone3", "exit", "exit_group", "sched_getaffinity",
			"sched_setaffinity", "clock_nanosleep", "clock_getres", "gettimeofday",
			"getrandom", "prctl", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
			"sigaltstack", "restart_syscall", "tkill", "setitimer", "getitimer",
			"timer_create", "timer_settime", "timer_gettime", "timer_delete", "uname",
			"getuid", "geteuid", "getgid", "getegid", "getppid", "prlimit64", "getrlimit",
			"getrusage", "sysinfo"},
		// Threads that C code starts, in a cgo or race-detector build:
		// glibc aborts the process if a new thread cannot register.
		{"rseq", "set_robust_list"},
		// Go's network poller and its wake-ups.
		{"epoll_create1", "epoll_ctl", "epoll_pwait2", "eventfd2", "pipe2", "ppoll", "pselect6"},
		// File descriptors: the TUN queues (and TUNSETPERSIST at exit),
		// /proc and /sys reads, the resolver's files, pcap and profile files,
		// the namespace's resolv.conf and control socket removed at exit.
		{"close", "close_range", "dup", "dup3", "fcntl", "ioctl", "lseek", "pread64", "pwrite64",
			"preadv", "pwritev", "fstat", "statx", "fstatfs", "statfs",
			"getdents64", "openat", "readlinkat", "faccessat", "faccessat2", "unlinkat",
			"mkdirat", "renameat", "renameat2", "fchmod", "fchmodat", "fchown", "fchownat",
			"fsync", "fdatasync", "ftruncate", "flock", "getcwd", "splice", "tee",
			"sendfile", "copy_file_range"},
		// Sockets: dials and relays, UDP sessions, ICMP echo, published
		// ports, DNS, the flows control socket, metrics, netlink and nftables
		// for the clean-up at exit.
		{"socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
			"getsockname", "getpeername", "setsockopt", "getsockopt", "shutdown"},
		// Processes: stopping `tungate run`'s namespace (kill what runs in
		// it, wait for its init) and unmounting --netns-path at exit.
		{"kill", "wait4", "waitid", "pidfd_open", "pidfd_send_signal", "umount2"},
	}
}

// archCalls are the calls of goarch alone: on amd64 the older calls that
// arm64 never had (Go and its libraries use the *at forms, but code that a
// dependency may reach still calls these), and the one call whose name
// differs (fstatat, which Go's os.Stat makes). ok is false for an
// architecture with no list.
func archCalls(goarch string) (names []string, ok bool) {
	switch goarch {
	case "amd64":
		return []string{"newfstatat", "open", "stat", "lstat", "poll", "select", "epoll_wait", "epoll_create",
			"pipe", "dup2", "access", "readlink", "unlink", "rmdir", "mkdir", "rename",
			"chmod", "getdents", "time", "arch_prctl"}, true
	case "arm64":
		return []string{"fstatat"}, true
	}
	return nil, false
}
