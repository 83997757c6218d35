package evlog

import (
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// TestIdleWriterRetriesSkippedMark: under SyncAlways a mark whose write
// runs out of space is skipped (the group is durable and acknowledged),
// and a reader in another process does not serve that group until a mark
// records it. The writer wrote the skipped mark only at its next Sync,
// Close or append: on a log that went idle right after the skip, such a
// reader never served the last acknowledged groups, however long the
// space had been back. The idle writer must retry the mark on a timer
// (with a backoff while the disk stays full), stop once it is written,
// and fail, as any mark write does, on an error other than lack of
// space.
//
// The writer's timers run on testing/synctest's fake clock: the test
// sleeps a fake minute, with no append, Sync or Close, and looks.
func TestIdleWriterRetriesSkippedMark(t *testing.T) {
	for _, tc := range []struct {
		name string
		// fails is how many mark writes fail once armed: the group's,
		// then the retries'.
		fails int32
		err   func(name string) error
		// served: a reader in another process serves the last group
		// after the fake minute (else the writer has failed).
		served bool
	}{
		{"space back at once", 1, vfs.ENOSPC, true},
		{"space back after retries", 6, vfs.ENOSPC, true},
		{"retry fails otherwise", 2, vfs.EIO, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := vfs.NewMem()
				var fails, marks atomic.Int32
				fsys := vfs.NewFaulty(mem, func(op vfs.Op) error {
					if !isSegmentWrite(op) || op.Len != segment.MarkFrameSize {
						return nil
					}
					marks.Add(1)
					switch n := fails.Add(-1); {
					case n < 0:
						return nil
					case n == tc.fails-1: // the group's own mark
						return vfs.ENOSPC(op.Name)
					default:
						return tc.err(op.Name)
					}
				})
				opts := Options{Sync: SyncAlways}
				l := openMem(t, fsys, opts)
				defer l.Close()
				appendN(t, l, "s", 2)
				// The writer's goroutine waits in its select, so the next
				// append's round runs on this goroutine (writer.direct),
				// which must hand the skipped mark's retry to it.
				synctest.Wait()
				fails.Store(tc.fails)
				appendN(t, l, "s", 1) // its group is durable, its mark skipped
				if fails.Load() != tc.fails-1 {
					t.Fatal("no mark write failed: the test does not test what it claims")
				}
				n := l.LastSeq()

				time.Sleep(time.Minute) // idle: no append, Sync or Close
				synctest.Wait()
				if left := fails.Load(); left > 0 {
					t.Fatalf("%d of the %d mark writes armed to fail were not tried in a minute", left, tc.fails)
				}
				ro, err := openFS(vfs.ReadOnly(mem.Clone()), opts, true)
				if err != nil {
					t.Fatalf("read-only open: %v", err)
				}
				got := ro.LastSeq()
				ro.Close()
				_, appendErr := l.Append(t.Context(), "s", ExpectAny, Envelope{Type: "e"})
				if !tc.served {
					if !errors.Is(appendErr, ErrWriterFailed) {
						t.Fatalf("append after a retried mark failed with %v: %v; want ErrWriterFailed", tc.err("x"), appendErr)
					}
					return
				}
				if got < n {
					t.Fatalf("a minute after a mark skipped for lack of space, with space back and the log idle, a reader in another process serves up to seq %d; the writer acknowledged %d", got, n)
				}
				if appendErr != nil {
					t.Fatalf("append after the retried mark: %v", appendErr)
				}

				// Written: the retries stop.
				synctest.Wait()
				before := marks.Load()
				time.Sleep(time.Hour)
				synctest.Wait()
				if extra := marks.Load() - before; extra != 0 {
					t.Errorf("%d mark writes in an idle hour after the mark was written; want none", extra)
				}
			})
		})
	}
}

// TestSkippedMarkRetryBacksOff: while the disk stays full the idle
// writer's retries back off (markRetryMin doubling to markRetryMax), so a
// full disk costs one 16-byte write attempt a second at most, not a busy
// loop, and the mark is still written once space comes back.
func TestSkippedMarkRetryBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := vfs.NewMem()
		var full atomic.Bool
		var marks atomic.Int32
		fsys := vfs.NewFaulty(mem, func(op vfs.Op) error {
			if !isSegmentWrite(op) || op.Len != segment.MarkFrameSize {
				return nil
			}
			marks.Add(1)
			if full.Load() {
				return vfs.ENOSPC(op.Name)
			}
			return nil
		})
		opts := Options{Sync: SyncAlways}
		l := openMem(t, fsys, opts)
		defer l.Close()
		appendN(t, l, "s", 2)
		full.Store(true)
		appendN(t, l, "s", 1) // its group is durable, its mark skipped
		n := l.LastSeq()
		synctest.Wait()
		before := marks.Load()
		const idle = 10 * time.Minute
		time.Sleep(idle)
		synctest.Wait()
		// The retries' delays sum to idle: their count is that of the
		// doubling delays up to the cap, plus one a cap from then on.
		want := int32(0)
		for d, sum := markRetryMin, time.Duration(0); ; d = min(2*d, markRetryMax) {
			if sum += d; sum > idle {
				break
			}
			want++
		}
		if got := marks.Load() - before; got != want {
			t.Errorf("%d mark writes tried in %v of a full disk; want %d (a backoff from %v to %v)", got, idle, want, markRetryMin, markRetryMax)
		}
		full.Store(false)
		time.Sleep(markRetryMax)
		synctest.Wait()
		ro, err := openFS(vfs.ReadOnly(mem.Clone()), opts, true)
		if err != nil {
			t.Fatalf("read-only open: %v", err)
		}
		defer ro.Close()
		if got := ro.LastSeq(); got < n {
			t.Errorf("once space is back, a reader in another process serves up to seq %d; the writer acknowledged %d", got, n)
		}
	})
}
