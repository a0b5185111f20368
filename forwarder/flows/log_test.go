package flows

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"sync"
	"testing"
)

// gate is a writer that blocks until opened.
type gate struct {
	open chan struct{}
	// entered, if set, hears of each Write before it waits for open.
	entered chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (g *gate) Write(b []byte) (int, error) {
	if g.entered != nil {
		g.entered <- struct{}{}
	}
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(b)
}

func TestLogWritesLines(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	l := NewLog(LogOptions{Out: g})
	tb := New(Options{Sink: l.Add})
	defer tb.Close()
	for range 3 {
		f := tb.Begin(Start{Protocol: TCP, Src: testSrc, Dst: testDst, Route: "direct"})
		f.Dialed(0, nil)
		f.Down().Add(7)
		f.Finish(EndClosed)
	}
	l.Close()
	sc := bufio.NewScanner(&g.buf)
	lines := 0
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if r.BytesDown != 7 || r.Dst != testDst || r.End != "closed" {
			t.Errorf("record = %+v", r)
		}
		lines++
	}
	if lines != 3 || l.Written() != 3 || l.Dropped() != 0 {
		t.Errorf("%d lines, written %d, dropped %d; want 3, 3, 0", lines, l.Written(), l.Dropped())
	}
}

// TestLogDropsWhenFull: a stuck writer never blocks Add; what does not fit
// is counted.
func TestLogDropsWhenFull(t *testing.T) {
	g := &gate{open: make(chan struct{}), entered: make(chan struct{}, 8)}
	l := NewLog(LogOptions{Out: g, Buffer: 4})
	const added = 50
	// The first record is taken by the writer, which then blocks in
	// Write: of the rest, the queue holds 4.
	l.Add(Record{End: "idle"})
	<-g.entered
	for range added - 1 {
		l.Add(Record{End: "idle"}) // returns at once although nothing is written
	}
	close(g.open)
	l.Close()
	if w, d := l.Written(), l.Dropped(); w != 5 || d != added-5 {
		t.Errorf("written %d, dropped %d of %d with a queue of 4", w, d, added)
	}
	l.Add(Record{})
	if d := l.Dropped(); d == 0 {
		t.Error("a record added after Close is not counted as dropped")
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestLogCountsFailedWrites(t *testing.T) {
	l := NewLog(LogOptions{Out: failing{}})
	l.Add(Record{})
	l.Add(Record{})
	l.Close()
	if l.Dropped() != 2 || l.Written() != 0 {
		t.Errorf("dropped %d, written %d; want 2, 0", l.Dropped(), l.Written())
	}
}
