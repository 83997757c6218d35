package evlog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
)

// TestSubscribeSeesEverySeqOnce: subscribers started at random points,
// with concurrent appenders, see every seq exactly once, in order, across
// the catch-up/live boundary, and stop cleanly on cancel.
func TestSubscribeSeesEverySeqOnce(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			l := openMem(t, vfs.NewMem(), Options{SegmentSize: MinSegmentSize})
			defer l.Close()
			ctx := t.Context()
			const writers, perWriter = 4, 150
			total := uint64(writers * perWriter)
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(seed, uint64(w)))
					for i := range perWriter {
						if _, err := l.Append(ctx, fmt.Sprintf("w%d", w), ExpectAny, Envelope{Type: "t", Data: []byte{byte(i)}}); err != nil {
							t.Error(err)
							return
						}
						if rng.IntN(10) == 0 {
							time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
						}
					}
				})
			}
			var subs sync.WaitGroup
			for s := range 3 {
				from := uint64(s * 100)
				subs.Go(func() {
					sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
					defer cancel()
					want := max(from, 1)
					for e, err := range l.Subscribe(sctx, from) {
						if err != nil {
							t.Errorf("subscriber %d: %v after seq %d", s, err, want-1)
							return
						}
						if e.Seq != want {
							t.Errorf("subscriber %d: got seq %d, want %d", s, e.Seq, want)
							return
						}
						if want++; want > total {
							return
						}
					}
				})
			}
			wg.Wait()
			subs.Wait()
		})
	}
}

// TestSubscribeCancelReleases: cancelling a waiting subscription ends it
// with the context's error and leaves no goroutine behind.
func TestSubscribeCancelReleases(t *testing.T) {
	l := openMem(t, vfs.NewMem(), Options{})
	defer l.Close()
	l.Append(t.Context(), "s", ExpectAny, Envelope{Type: "t"})
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		var last error
		n := 0
		for _, err := range l.Subscribe(ctx, 1) {
			if err != nil {
				last = err
				continue
			}
			n++
		}
		if n != 1 {
			last = fmt.Errorf("saw %d events, want 1", n)
		}
		done <- last
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("subscription ended with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled subscription did not return")
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after the subscription ended, %d before", n, before)
	}
}

// TestSubscribeEndsOnClose: closing the log ends a waiting subscription.
func TestSubscribeEndsOnClose(t *testing.T) {
	l := openMem(t, vfs.NewMem(), Options{})
	done := make(chan error, 1)
	go func() {
		for _, err := range l.Subscribe(context.Background(), 1) {
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	time.Sleep(10 * time.Millisecond)
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("got %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("subscription did not end when the log closed")
	}
}
