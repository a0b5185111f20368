package poll

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRunDrainedLosesNoWakeUp: a handler that drains its fd gets every
// later event although the next wait parks without asking the set, and
// one that leaves data behind is called again at once.
func TestRunDrainedLosesNoWakeUp(t *testing.T) {
	ep, err := NewEpoll("test-epoll")
	if err != nil {
		t.Fatal(err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	if err := ep.Ctl(unix.EPOLL_CTL_ADD, efd, unix.EPOLLIN, 7); err != nil {
		t.Fatal(err)
	}
	calls := make(chan uint64, 64)
	var mu sync.Mutex
	leave := 2 // calls that leave the count unread
	var wg sync.WaitGroup
	wg.Go(func() {
		ep.RunDrained(func(data uint64, _ uint32) bool {
			mu.Lock()
			defer mu.Unlock()
			if leave > 0 {
				leave--
				calls <- data
				return false
			}
			var buf [8]byte
			unix.Read(efd, buf[:])
			calls <- data
			return true
		})
	})
	defer func() {
		ep.Close()
		wg.Wait()
	}()
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	wait := func(what string) {
		t.Helper()
		select {
		case d := <-calls:
			if d != 7 {
				t.Fatalf("%s: data %d, want 7", what, d)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the handler was not called", what)
		}
	}
	unix.Write(efd, one)
	wait("first event")
	wait("not drained: called again")
	wait("not drained twice: called again")
	for range 20 {
		time.Sleep(time.Millisecond)
		unix.Write(efd, one)
		wait("an event after a drained round")
	}
	select {
	case <-calls:
		t.Fatal("called with nothing to read")
	case <-time.After(50 * time.Millisecond):
	}
}
