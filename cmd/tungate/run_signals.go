package main

import (
	"log/slog"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/stack/appns"
)

// waitForwarding waits for CMD to exit, passing on the signals tungate
// receives meanwhile.
//
// CMD shares tungate's process group, so keys typed at the terminal
// (Ctrl-C, Ctrl-\) and a terminal hang-up already reach it directly, and so
// does Ctrl-Z (both stop, both resume with fg). Passing those on too would
// deliver them twice, so SIGINT, SIGQUIT and SIGHUP are passed on only
// when tungate is not in the terminal's foreground process group. (A
// `kill -INT` aimed at a foreground tungate is therefore not passed on;
// SIGTERM always is.)
func waitForwarding(ns *appns.Namespace, sigs <-chan os.Signal, log *slog.Logger) *os.ProcessState {
	done := make(chan *os.ProcessState, 1)
	go func() { done <- ns.Wait() }()
	tty, err := os.OpenFile("/dev/tty", os.O_RDONLY|unix.O_NOCTTY, 0)
	if err == nil {
		defer tty.Close()
	}
	for {
		select {
		case st := <-done:
			return st
		case sig := <-sigs:
			if sig != syscall.SIGTERM && fromTerminal(tty) {
				continue
			}
			if err := ns.Signal(sig); err != nil {
				log.Debug("pass signal to the command", "signal", sig, "err", err)
			}
		}
	}
}

// fromTerminal reports whether tungate's process group is the foreground
// one of its controlling terminal (tty, nil if none).
func fromTerminal(tty *os.File) bool {
	if tty == nil {
		return false
	}
	pg, err := unix.IoctlGetInt(int(tty.Fd()), unix.TIOCGPGRP)
	return err == nil && pg == unix.Getpgrp()
}
