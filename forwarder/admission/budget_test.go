package admission

import (
	"testing"
)

// fakeUDP is an evictor that holds UDP sessions as the UDP table does:
// idle ones may be evicted, oldest first.
type fakeUDP struct {
	idle    []*Ticket // the oldest first
	evicted int
}

func (u *fakeUDP) evict() bool {
	if len(u.idle) == 0 {
		return false
	}
	u.idle[0].Release()
	u.idle = u.idle[1:]
	u.evicted++
	return true
}

func mustSession(t *testing.T, g *Gate, evict func() bool) *Ticket {
	t.Helper()
	tk, r := g.Session(Ordinary, evict)
	if tk == nil {
		t.Fatalf("session refused: %v", r)
	}
	return tk
}

// TestOneBudget: TCP connections holding N-1 flows leave one for UDP; the
// next UDP session and TCP connection are refused for max_flows.
func TestOneBudget(t *testing.T) {
	g := newGate(t, Limits{MaxFlows: 5, MaxPending: 8, PendingPerDst: 8, PendingPerSrc: 8})
	var tcp []*Ticket
	for range 4 {
		tk := mustDial(t, g, app1, dst("192.0.2.1"))
		tk.Done()
		tcp = append(tcp, tk)
	}
	s := mustSession(t, g, nil)
	if tk, r := g.Session(Ordinary, nil); tk != nil || r != Flows {
		t.Fatalf("UDP session past the shared budget: %v, want %v", r, Flows)
	}
	if tk, r := g.Dial(app1, dst("192.0.2.1"), Ordinary); tk != nil || r != Flows {
		t.Fatalf("TCP past the shared budget: %v, want %v", r, Flows)
	}
	if got := g.Refused()["max_flows"]; got != 2 {
		t.Fatalf("max_flows refusals %d, want 2", got)
	}
	tcp[0].Release() // a TCP close frees a flow for UDP
	s2 := mustSession(t, g, nil)
	if u := g.Usage(); u.Flows != 5 || u.UDPSessions != 2 || u.Sockets != 3 {
		t.Fatalf("usage %+v; want 5 flows, 2 UDP sessions, 3 sockets", u)
	}
	for _, tk := range append(tcp, s, s2) {
		tk.Release()
	}
	if u := g.Usage(); u != (Usage{}) {
		t.Fatalf("usage after every flow ended: %+v", u)
	}
}

// TestTCPEvictsIdleUDP: at the cap a TCP connection takes an idle UDP
// session's flow, oldest first; with none left it is refused, counted once.
func TestTCPEvictsIdleUDP(t *testing.T) {
	g := newGate(t, Limits{MaxFlows: 3})
	u := &fakeUDP{}
	g.SetEvictor(u.evict)
	mustDial(t, g, app1, dst("192.0.2.1")).Done()
	a, b := mustSession(t, g, nil), mustSession(t, g, nil)
	u.idle = []*Ticket{a, b}
	mustDial(t, g, app1, dst("192.0.2.2")).Done()
	if u.evicted != 1 || len(u.idle) != 1 || u.idle[0] != b {
		t.Fatalf("evicted %d, left %v; want a evicted first", u.evicted, u.idle)
	}
	mustDial(t, g, app1, dst("192.0.2.3")).Done()
	if tk, r := g.Dial(app1, dst("192.0.2.4"), Ordinary); tk != nil || r != Flows {
		t.Fatalf("TCP with no idle UDP session to evict: %v, want %v", r, Flows)
	}
	if r := g.Refused(); r["max_flows"] != 1 || len(r) != 1 {
		t.Fatalf("refusals %v; want max_flows once (evictions are not refusals)", r)
	}
	if us := g.Usage(); us.Flows != 3 || us.UDPSessions != 0 {
		t.Fatalf("usage %+v", us)
	}
}

// TestSessionEvictsAndUDPCap: a UDP session at the UDP cap or the flow cap
// asks its own evictor; MaxUDPSessions is never above MaxFlows.
func TestSessionEvictsAndUDPCap(t *testing.T) {
	if l, _ := (Limits{MaxFlows: 10}).WithDefaults(); l.MaxUDPSessions != 10 {
		t.Fatalf("MaxUDPSessions %d with MaxFlows 10; want 10", l.MaxUDPSessions)
	}
	g := newGate(t, Limits{MaxFlows: 10, MaxUDPSessions: 2})
	u := &fakeUDP{}
	u.idle = []*Ticket{mustSession(t, g, nil), mustSession(t, g, nil)}
	if tk, r := g.Session(Ordinary, nil); tk != nil || r != UDPSessions {
		t.Fatalf("session past MaxUDPSessions: %v, want %v", r, UDPSessions)
	}
	c := mustSession(t, g, u.evict)
	if u.evicted != 1 {
		t.Fatalf("evicted %d; want 1", u.evicted)
	}
	u.idle = nil // the rest are busy
	if tk, r := g.Session(Ordinary, u.evict); tk != nil || r != UDPSessions {
		t.Fatalf("session with nothing idle: %v, want %v", r, UDPSessions)
	}
	if got := g.Refused()["max_udp_sessions"]; got != 2 {
		t.Fatalf("max_udp_sessions refusals %d, want 2", got)
	}
	c.Release()
}

// TestSocketsCountForTheFDShare: each UDP mapping takes a descriptor; at
// FDFlows a new one evicts an idle session (skipping those with no
// socket), or is refused for fd_limit; Release gives back every socket.
func TestSocketsCountForTheFDShare(t *testing.T) {
	g := newGate(t, Limits{MaxFlows: 10, FDFlows: 3, Reserve: 1})
	tcp := mustDial(t, g, app1, dst("192.0.2.1"))
	tcp.Done()
	busy := mustSession(t, g, nil)
	for range 2 {
		if r := busy.AddSocket(Ordinary, nil); r != Admitted {
			t.Fatalf("socket within FDFlows: %v", r)
		}
	}
	if _, r := g.Dial(app1, dst("192.0.2.2"), Ordinary); r != FDs {
		t.Fatalf("TCP with every descriptor held by a UDP session: %v, want %v", r, FDs)
	}
	idleNoSocket := mustSession(t, g, nil)
	u := &fakeUDP{idle: []*Ticket{idleNoSocket, busy}}
	other := mustSession(t, g, nil)
	if r := other.AddSocket(Ordinary, u.evict); r != Admitted || u.evicted != 2 {
		t.Fatalf("socket at FDFlows: %v after %d evictions; want admitted after 2", r, u.evicted)
	}
	if r := other.AddSocket(Ordinary, u.evict); r != Admitted {
		t.Fatalf("second socket within FDFlows: %v", r)
	}
	if r := other.AddSocket(Ordinary, u.evict); r != FDs {
		t.Fatalf("socket with nothing to evict: %v, want %v", r, FDs)
	}
	other.DropSocket()
	other.DropSocket()
	other.DropSocket() // holds none now: no effect
	if us := g.Usage(); us.Sockets != 1 {
		t.Fatalf("sockets %d after DropSocket; want the TCP one", us.Sockets)
	}
	if r := other.AddSocket(Ordinary, nil); r != Admitted {
		t.Fatalf("socket after DropSocket: %v", r)
	}
	other.Release()
	if r := other.AddSocket(Ordinary, nil); r != Closed {
		t.Fatalf("socket of a released ticket: %v, want %v", r, Closed)
	}
	tcp.Release()
	if us := g.Usage(); us != (Usage{}) {
		t.Fatalf("usage after every flow ended: %+v", us)
	}
}
