package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	mrand "math/rand/v2"
)

// txfirstSeed fixes the stream a txfirst server sends, so that the client can
// check every byte without being told what to expect.
var txfirstSeed = [32]byte{'n', 'e', 't', 'l', 'a', 'b', ' ', 't', 'x', 'f', 'i', 'r', 's', 't'}

// randomReader returns size bytes from a fresh random seed.
func randomReader(size int64) io.Reader {
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	return io.LimitReader(mrand.NewChaCha8(seed), size)
}

// patternReader returns the size bytes a txfirst server sends.
func patternReader(size int64) io.Reader {
	return io.LimitReader(mrand.NewChaCha8(txfirstSeed), size)
}

// hashingWriter counts and hashes what is written to it.
type hashingWriter struct {
	n int64
	h hash.Hash
}

func newHashingWriter() *hashingWriter { return &hashingWriter{h: sha256.New()} }

func (w *hashingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

// summary is the "SIZE SHA256" form in which sizes and digests are reported.
func (w *hashingWriter) summary() string {
	return fmt.Sprintf("%d %s", w.n, hex.EncodeToString(w.h.Sum(nil)))
}

// compareWriter checks that what is written to it equals want's stream.
type compareWriter struct {
	want io.Reader
	off  int64
	buf  []byte
}

func (w *compareWriter) Write(p []byte) (int, error) {
	if cap(w.buf) < len(p) {
		w.buf = make([]byte, len(p))
	}
	want := w.buf[:len(p)]
	n, _ := io.ReadFull(w.want, want)
	if !bytes.Equal(p[:n], want[:n]) || n < len(p) {
		return 0, fmt.Errorf("stream differs from the expected one within bytes %d..%d", w.off, w.off+int64(len(p)))
	}
	w.off += int64(n)
	return n, nil
}
