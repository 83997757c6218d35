package jetstream_test

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
)

// TestSubscribeAcrossACutConnection: a subscriber following appends
// whose connection is cut mid-stream (after its second pull request
// reached the server) yields every event once, in seq order, with no gap:
// the events before the cut, those appended while it reconnects and those
// after.
func TestSubscribeAcrossACutConnection(t *testing.T) {
	s := startServer(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Addr().(*net.TCPAddr).Port))
	p := startFaultProxy(t, addr)
	w := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1})
	sub := openLog(t, connectVia(t, p.URL(), proxyTimeout), evjs.Config{Name: w.Name(), Replicas: 1})
	// The subscription follows appends forever: a guard ends it (with
	// an error, a failure) if it stalls.
	ctx, cancel := context.WithCancel(guarded(t, hangGuard))
	defer cancel()
	appendN := func(n int) {
		for i := 0; i < n; i += 50 {
			evs := make([]event.Envelope, 50)
			for j := range evs {
				evs[j] = ev("e")
			}
			if _, err := w.Append(ctx, strconv.Itoa(i%7), evlog.ExpectAny, evs...); err != nil {
				t.Error(err)
				return
			}
		}
	}
	const half = 400
	appendN(half)
	p.arm("$JS.API.CONSUMER.MSG.NEXT.", faultCut, 2, nil, false)
	done := make(chan struct{})
	var appending sync.WaitGroup
	// The appender ends (cancel) and is waited for before the test
	// ends, also when it fails early: it reports to t.
	t.Cleanup(appending.Wait)
	next := uint64(1)
	for e, err := range sub.Subscribe(ctx, 1) {
		if err != nil {
			t.Fatalf("after seq %d: %v", next-1, err)
		}
		if e.Seq != next {
			t.Fatalf("got seq %d, want %d", e.Seq, next)
		}
		if next == half/2 {
			appending.Go(func() { defer close(done); appendN(half) })
		}
		if next == 2*half {
			break
		}
		next++
	}
	receive(t, done, "the second half of the appends")
	if fired, _ := p.hasFired(); !fired {
		t.Error("the connection was never cut")
	}
}
