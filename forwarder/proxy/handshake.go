package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// DefaultHandshakeTimeout bounds one hop's handshake when the caller gives
// no timeout of its own.
const DefaultHandshakeTimeout = 10 * time.Second

// longAgo is a deadline in the past; setting it interrupts blocked I/O.
var longAgo = time.Unix(1, 0)

// runHandshake runs fn, which talks to a proxy over conn, under a deadline of
// timeout (or ctx's deadline if sooner), and interrupts it if ctx is
// cancelled. The deadline is cleared again on success. On failure the caller
// closes conn.
func runHandshake(ctx context.Context, conn net.Conn, timeout time.Duration, fn func() error) error {
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	deadline := time.Now().Add(timeout)
	ctxDeadline, ok := ctx.Deadline()
	ctxFirst := ok && ctxDeadline.Before(deadline)
	if ctxFirst {
		deadline = ctxDeadline
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("set handshake deadline: %w", err)
	}
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(interrupted)
		_ = conn.SetDeadline(longAgo) // the handshake's own error reports it
	})
	err := fn()
	if !stop() {
		// ctx ended and the interrupt ran (or is running): wait for it so
		// that it cannot move the deadline after we return.
		<-interrupted
		return fmt.Errorf("proxy handshake: %w", context.Cause(ctx))
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if ctxFirst {
				return fmt.Errorf("proxy handshake: %w", context.DeadlineExceeded)
			}
			return fmt.Errorf("%w: no answer within %v: check that the proxy is up and speaks this protocol (%w)",
				ErrHandshakeTimeout, timeout, err)
		}
		return err
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("clear handshake deadline: %w", err)
	}
	return nil
}

// closeOnError closes conn when *errp is non-nil; used with defer so that no
// error path leaks the connection.
func closeOnError(conn net.Conn, errp *error) {
	if *errp != nil {
		_ = conn.Close()
	}
}
