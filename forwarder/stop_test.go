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
	entry := func(name string) *liveFlow { return &liveFlow{app: conn("app" + name), host: conn("host" + name)} }
	a, b, c := entry("1"), entry("2"), entry("3")
	if !l.add(a) || !l.add(b) || !l.add(c) {
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
	if l.add(entry("late")) {
		t.Fatal("add entered a flow after resetAll")
	}
	l.remove(a) // a relay ending after resetAll: harmless
	if n := l.resetAll(); n != 0 {
		t.Fatalf("second resetAll reset %d flows; want 0", n)
	}
}
