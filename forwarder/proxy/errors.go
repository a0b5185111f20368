package proxy

import (
	"errors"
	"fmt"
)

// HopError names the hop of a chain that failed. Index counts from 1 at the
// hop dialed from the host; Hop is the hop's redacted URL (never a password).
// errors.Is sees through it to the sentinels (ErrRefused, ErrAuth, ...).
type HopError struct {
	Index int
	Hop   string
	Err   error
}

// Error implements error.
func (e *HopError) Error() string {
	return fmt.Sprintf("hop %d %s: %v", e.Index, e.Hop, e.Err)
}

// Unwrap lets errors.Is and errors.As reach the cause.
func (e *HopError) Unwrap() error { return e.Err }

// markedError keeps an error's own text while also matching a sentinel, so
// that errors.Is(err, ErrRefused) and errors.Is(err, syscall.ECONNREFUSED)
// both hold.
type markedError struct {
	err  error
	kind error
}

func (e *markedError) Error() string   { return e.err.Error() }
func (e *markedError) Unwrap() []error { return []error{e.err, e.kind} }

// mark returns err tagged with kind, or err unchanged if it already matches.
func mark(err, kind error) error {
	if err == nil || errors.Is(err, kind) {
		return err
	}
	return &markedError{err: err, kind: kind}
}
