package forwarder

import (
	"net"
	"sync"
	"testing"
)

// resetRecorder is a net.Conn that records the order of resets.
type resetRecorder struct {
	net.Conn
	name string
	log  *resetLog
}

type resetLog struct {
	mu    sync.Mutex
	order []string
}

func (r *resetRecorder) Reset() error {
	r.log.mu.Lock()
	r.log.order = append(r.log.order, r.name)
	r.log.mu.Unlock()
	return nil
}

func (r *resetRecorder) Close() error { return nil }

func TestLiveTCPResetsAppsFirstAndRefusesAfter(t *testing.T) {
	var l liveTCP
	var log resetLog
	conn := func(name string) net.Conn { return &resetRecorder{name: name, log: &log} }
	a := l.add(conn("app1"), conn("host1"))
	b := l.add(conn("app2"), conn("host2"))
	c := l.add(conn("app3"), conn("host3"))
	if a == nil || b == nil || c == nil {
		t.Fatal("add refused before resetAll")
	}
	l.remove(b) // ended on its own: not reset
	l.remove(nil)
	if n := l.resetAll(); n != 2 {
		t.Fatalf("resetAll reset %d flows; want 2", n)
	}
	want := map[string]int{"app1": 0, "app3": 0, "host1": 2, "host3": 2}
	if len(log.order) != 4 {
		t.Fatalf("resets %v; want app1, app3, host1, host3 (apps first)", log.order)
	}
	for i, name := range log.order {
		if w, ok := want[name]; !ok || i/2*2 != w {
			t.Fatalf("resets %v; want both apps before both upstreams, and no app2/host2", log.order)
		}
	}
	if l.add(conn("late"), conn("late")) != nil {
		t.Fatal("add entered a flow after resetAll")
	}
	l.remove(a) // a relay ending after resetAll: harmless
	if n := l.resetAll(); n != 0 {
		t.Fatalf("second resetAll reset %d flows; want 0", n)
	}
}
