package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// idleResult is what idle prints once its connections are open.
type idleResult struct {
	Open    int     `json:"open"`
	Failed  int     `json:"failed"`
	Seconds float64 `json:"seconds"`
}

// runIdle opens -n TCP connections (-c dials at a time), prints an
// idleResult line, holds them without traffic until stdin closes, and then
// closes them all.
func runIdle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var n int
	addr, workers, d, err := loadFlags("idle", args, stderr, 64, func(fs *flag.FlagSet) {
		fs.IntVar(&n, "n", 10000, "connections to open")
	})
	if err != nil {
		return err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d)
	conns := openIdle(ctx, addr, n, workers)
	cancel()
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	res := idleResult{Open: len(conns), Failed: n - len(conns), Seconds: time.Since(start).Seconds()}
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// openIdle dials n connections with the given concurrency and returns the
// ones that opened before ctx ended.
func openIdle(ctx context.Context, addr string, n, workers int) []net.Conn {
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	for range workers {
		wg.Go(func() {
			dialer := net.Dialer{Timeout: 5 * time.Second}
			for range next {
				c, err := dialer.DialContext(ctx, "tcp", addr)
				if err != nil {
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return conns
}
