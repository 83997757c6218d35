package evlog

import (
	"bytes"
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

// TestSubscribeReadOnlyFollows: Subscribe on a read-only log follows the
// writer by itself (no Refresh loop in the caller), across rolls and a
// compaction, and delivers every event once, in order. In a synctest bubble
// the follow interval is virtual time.
func TestSubscribeReadOnlyFollows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		mem := vfs.NewMem()
		w := openMem(t, mem, Options{SegmentSize: MinSegmentSize})
		defer w.Close()
		appendN := func(from, n int) {
			for i := range n {
				if _, err := w.Append(ctx, fmt.Sprintf("s-%d", (from+i)%5), ExpectAny, Envelope{Type: "t", Data: bytes.Repeat([]byte{byte(from + i)}, 100)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		appendN(0, 10)
		r, err := openFS(vfs.ReadOnly(mem), Options{FollowInterval: 50 * time.Millisecond}, true)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		const total = 400
		got := make(chan uint64, total)
		done := make(chan error, 1)
		go func() {
			// Virtual time: a subscription that does not follow fails after
			// ten virtual minutes instead of hanging the test.
			sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
			defer cancel()
			for e, err := range r.Subscribe(sctx, 1) {
				if err != nil {
					done <- err
					return
				}
				got <- e.Seq
				if e.Seq == total {
					done <- nil
					return
				}
			}
		}()
		appendN(10, 190) // several rolls
		synctest.Wait()
		if _, err := w.Compact(ctx, CompactOptions{TargetSize: 1 << 20}); err != nil {
			t.Fatal(err)
		}
		appendN(200, total-200)
		if err := <-done; err != nil {
			t.Fatalf("read-only subscription: %v", err)
		}
		close(got)
		want := uint64(1)
		for seq := range got {
			if seq != want {
				t.Fatalf("got seq %d, want %d", seq, want)
			}
			want++
		}
		if want != total+1 {
			t.Fatalf("saw %d events, want %d", want-1, total)
		}
	})
}
