package poll

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRunLosesNoEventDuringARound: an fd that becomes readable while the
// handler runs for another is handled next, even once the runtime's
// poller has seen the set's descriptor ready in the meantime (another P
// polls the network while the round runs): the wait after a round must
// ask the set. A wait that parked at once after a round that drained
// everything lost such events (UDP round trips under --cpus 2 stalled
// until the app's own timeout).
func TestRunLosesNoEventDuringARound(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS >= 2: with one P nothing polls the network while the round runs")
	}
	ep, err := NewEpoll("test-epoll")
	if err != nil {
		t.Fatal(err)
	}
	var fds [2]int
	for i := range fds {
		if fds[i], err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fds[i])
		if err := ep.Ctl(unix.EPOLL_CTL_ADD, fds[i], unix.EPOLLIN, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	calls := make(chan uint64, 64)
	var wg sync.WaitGroup
	wg.Go(func() {
		ep.Run(func(data uint64, _ uint32) {
			var buf [8]byte
			unix.Read(fds[data], buf[:]) // drained
			if data == 0 {
				// The other fd becomes ready during this round; the
				// pause lets the runtime's poller see the set ready.
				unix.Write(fds[1], one)
				time.Sleep(30 * time.Millisecond)
			}
			calls <- data
		})
	})
	defer func() {
		ep.Close()
		wg.Wait()
	}()
	for round := range 5 {
		unix.Write(fds[0], one)
		for _, want := range []uint64{0, 1} {
			select {
			case d := <-calls:
				if d != want {
					t.Fatalf("round %d: handled fd %d, want %d", round, d, want)
				}
			case <-time.After(2 * time.Second):
				t.Fatalf("round %d: fd %d, readable since the round before, was not handled within 2 s", round, want)
			}
		}
	}
}
