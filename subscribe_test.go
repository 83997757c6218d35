package evlog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
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
					sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
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
// with the context's error and leaves no goroutine behind. It runs in a
// synctest bubble: synctest.Wait proves the subscriber is parked before
// the cancel, and the bubble fails the test if any goroutine it started
// is still alive when the log is closed.
func TestSubscribeCancelReleases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := openMem(t, vfs.NewMem(), Options{})
		defer l.Close()
		l.Append(t.Context(), "s", ExpectAny, Envelope{Type: "t"})
		ctx, cancel := context.WithCancel(t.Context())
		var n int
		var last error
		done := make(chan struct{})
		go func() {
			defer close(done)
			for _, err := range l.Subscribe(ctx, 1) {
				if err != nil {
					last = err
					continue
				}
				n++
			}
		}()
		synctest.Wait() // the subscriber saw seq 1 and waits for more
		if n != 1 {
			t.Fatalf("saw %d events before waiting, want 1", n)
		}
		cancel()
		<-done
		if !errors.Is(last, context.Canceled) {
			t.Fatalf("subscription ended with %v, want context.Canceled", last)
		}
	})
}

// TestSubscribeEndsOnClose: closing the log ends a waiting subscription.
func TestSubscribeEndsOnClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
		synctest.Wait() // the subscriber waits for an append
		l.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Fatalf("got %v, want ErrClosed", err)
		}
	})
}
