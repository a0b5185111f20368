package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loadFlags parses the flags every load generator shares.
func loadFlags(name string, args []string, stderr io.Writer, workers int, extra func(*flag.FlagSet)) (addr string, c int, d time.Duration, err error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&addr, "addr", "", "server address host:port")
	fs.IntVar(&c, "c", workers, "concurrent clients")
	fs.DurationVar(&d, "d", 2*time.Second, "how long to run")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return "", 0, 0, fmt.Errorf("%w: %v", errUsage, err)
	}
	if addr == "" || c < 1 || d <= 0 {
		return "", 0, 0, fmt.Errorf("%w: %s needs -addr, -c >= 1 and -d > 0", errUsage, name)
	}
	return addr, c, d, nil
}

// runProbe makes one TCP connection to -addr; it exits 0 once the path works.
func runProbe(ctx context.Context, args []string, stderr io.Writer) error {
	addr, _, d, err := loadFlags("probe", args, stderr, 1, nil)
	if err != nil {
		return err
	}
	dialer := net.Dialer{Timeout: d}
	c, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// connRateResult is what connrate prints.
type connRateResult struct {
	Connections int64   `json:"connections"`
	Errors      int64   `json:"errors"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"per_second"`
}

// runConnRate opens short connections from -c workers for -d: connect, send
// a request, read the answer until the server closes, close.
func runConnRate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	addr, workers, d, err := loadFlags("connrate", args, stderr, 50, nil)
	if err != nil {
		return err
	}
	var ok, failed atomic.Int64
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			dialer := net.Dialer{Timeout: 3 * time.Second}
			req := make([]byte, requestSize)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := oneRequest(ctx, &dialer, addr, req); err != nil {
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	return json.NewEncoder(stdout).Encode(connRateResult{ok.Load(), failed.Load(), secs, float64(ok.Load()) / secs})
}

func oneRequest(ctx context.Context, dialer *net.Dialer, addr string, req []byte) error {
	c, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return err
	}
	if n != responseSize {
		return fmt.Errorf("got %d response bytes, want %d", n, responseSize)
	}
	return nil
}

// udpResult is what udprr prints.
type udpResult struct {
	RoundTrips int64   `json:"round_trips"`
	Lost       int64   `json:"lost"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	MedianUS   float64 `json:"median_us"`
}

// runUDPRoundTrips sends DNS-sized datagrams from -c sockets, each waiting
// for its echo before sending the next, for -d.
func runUDPRoundTrips(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	addr, workers, d, err := loadFlags("udprr", args, stderr, 8, nil)
	if err != nil {
		return err
	}
	var lost atomic.Int64
	rtts := make([][]time.Duration, workers)
	errs := make([]error, workers)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { rtts[w], errs[w] = udpWorker(ctx, addr, deadline, &lost) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	all := slices.Concat(rtts...)
	secs := time.Since(start).Seconds()
	res := udpResult{RoundTrips: int64(len(all)), Lost: lost.Load(), Seconds: secs, PerSecond: float64(len(all)) / secs}
	if len(all) > 0 {
		slices.Sort(all)
		res.MedianUS = float64(all[len(all)/2].Microseconds())
	}
	return json.NewEncoder(stdout).Encode(res)
}

func udpWorker(ctx context.Context, addr string, deadline time.Time, lost *atomic.Int64) ([]time.Duration, error) {
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	out := make([]byte, udpPayloadBytes)
	in := make([]byte, 2048)
	var rtts []time.Duration
	for seq := uint64(0); time.Now().Before(deadline) && ctx.Err() == nil; seq++ {
		binary.BigEndian.PutUint64(out, seq)
		sent := time.Now()
		if _, err := c.Write(out); err != nil {
			return rtts, fmt.Errorf("udp send: %w", err)
		}
		if !awaitEcho(c, in, seq, sent.Add(500*time.Millisecond)) {
			lost.Add(1)
			continue
		}
		rtts = append(rtts, time.Since(sent))
	}
	return rtts, nil
}

// awaitEcho reads until the echo of seq arrives (late echoes of earlier
// datagrams are skipped) or the deadline passes.
func awaitEcho(c net.Conn, buf []byte, seq uint64, deadline time.Time) bool {
	_ = c.SetReadDeadline(deadline)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return false
		}
		if n == udpPayloadBytes && binary.BigEndian.Uint64(buf) == seq {
			return true
		}
	}
}
