package evlog

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// TestSyncAfterSkippedMark: under SyncAlways a mark whose write runs out
// of space is skipped (the group is durable; "the next mark records it"),
// so a reader in another process does not serve that group until a later
// mark does. A snapshot Save and a Subscription.Ack of the group call
// Sync to make that mark durable (syncThrough, servedAfterPowerLoss), but
// Sync fsynced only when something was written since the last fsync, and
// the skipped mark left nothing: the Save and the Ack succeeded with no
// mark at all, a snapshot and a position past the end of the log such a
// reader serves, even without a power loss. Sync must write the mark a
// failed write skipped, and fsync it.
//
// Each case runs in a synctest bubble: the writer's timed retry of the
// skipped mark (markRetry) cannot fire before the Save or the Ack is
// queued, so it is they that write it, whatever the scheduler does.
func TestSyncAfterSkippedMark(t *testing.T) {
	// The snapshot package's zstd codecs are process-wide: TestMain
	// creates them outside every bubble (warmSnapshotCodecs).
	for _, what := range []string{"snapshot", "ack"} {
		t.Run(what, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := vfs.NewMem()
				var failMark atomic.Bool
				fsys := vfs.NewFaulty(mem, func(op vfs.Op) error {
					if isSegmentWrite(op) && op.Len == segment.MarkFrameSize && failMark.CompareAndSwap(true, false) {
						return vfs.ENOSPC(op.Name)
					}
					return nil
				})
				opts := Options{Sync: SyncAlways}
				l := openMem(t, fsys, opts)
				defer l.Close()
				appendN(t, l, "s", 2)
				failMark.Store(true)
				appendN(t, l, "s", 1) // its group is durable, its mark skipped
				if failMark.Load() {
					t.Fatal("no mark write failed: the test does not test what it claims")
				}
				n := l.LastSeq()
				switch what {
				case "snapshot":
					saveSnap(t, l, mustSnapshots(t, l), n)
				case "ack":
					sub, err := l.Subscription("sub", Filter{})
					if err != nil {
						t.Fatal(err)
					}
					if err := sub.Ack(t.Context(), n); err != nil {
						t.Fatal(err)
					}
				}
				for _, c := range []struct {
					name string
					fs   vfs.FS
				}{
					{"beside the writer", mem.Clone()},
					{"after a power loss", mem.CrashClone(vfs.DropUnsynced, rand.New(rand.NewPCG(1, 2)))},
				} {
					ro, err := openFS(vfs.ReadOnly(c.fs), opts, true)
					if err != nil {
						t.Fatalf("%s: read-only open: %v", c.name, err)
					}
					if got := ro.LastSeq(); got < n {
						t.Errorf("%s: a read-only open serves up to seq %d, but the %s was saved at %d", c.name, got, what, n)
					}
					ro.Close()
				}
			})
		})
	}
}

// TestAckFailsWhenTheMarkCannotBeWritten: when the mark a Sync writes
// again runs out of space too, an Ack (and a snapshot Save, which shares
// syncThrough's path) must fail, matching syscall.ENOSPC, rather than
// record a position a reader in another process does not serve; once
// space is freed the Ack succeeds. On the old code the Ack succeeded at
// once.
//
// It runs in a synctest bubble: the writer's timed retry of the skipped
// mark (markRetry) would otherwise take the second failure, or write the
// mark, before the Ack is queued, whatever the scheduler does.
func TestAckFailsWhenTheMarkCannotBeWritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := vfs.NewMem()
		var failMarks atomic.Int32
		fsys := vfs.NewFaulty(mem, func(op vfs.Op) error {
			if isSegmentWrite(op) && op.Len == segment.MarkFrameSize && failMarks.Add(-1) >= 0 {
				return vfs.ENOSPC(op.Name)
			}
			return nil
		})
		opts := Options{Sync: SyncAlways}
		l := openMem(t, fsys, opts)
		defer l.Close()
		appendN(t, l, "s", 2)
		failMarks.Store(2) // the group's mark, and the one Ack's Sync writes again
		appendN(t, l, "s", 1)
		n := l.LastSeq()
		sub, err := l.Subscription("sub", Filter{})
		if err != nil {
			t.Fatal(err)
		}
		err = sub.Ack(t.Context(), n)
		if !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrWriterFailed) {
			t.Fatalf("Ack with no space for the mark: %v; want an ENOSPC error, the writer still usable", err)
		}
		if failMarks.Load() > 0 {
			t.Fatal("fewer than two mark writes failed: the test does not test what it claims")
		}
		if err := sub.Ack(t.Context(), n); err != nil {
			t.Fatalf("Ack once space is freed: %v", err)
		}
		ro, err := openFS(vfs.ReadOnly(mem.CrashClone(vfs.DropUnsynced, rand.New(rand.NewPCG(1, 2)))), opts, true)
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		if got := ro.LastSeq(); got < n {
			t.Errorf("after a power loss a read-only open serves up to seq %d, but the Ack was of %d", got, n)
		}
	})
}

// TestSkippedMarkIsWrittenAgain: a mark skipped for lack of space must be
// written at the writer's next opportunity, so that a reader in another
// process serves the group it skipped as soon as space allows — not only
// at the next successful group or Sync. Close left it unwritten (Close
// fsyncs only when something was written since the last fsync, and the
// skipped mark left nothing): a closed log whose last group a reader in
// another process never served, until a writer opened it again. An
// append that failed for lack of space (its partial bytes removed, which
// may free the 16 bytes a mark needs) did not try it either.
//
// Each case runs in a synctest bubble, so that the writer's timed retry
// (markRetry, TestIdleWriterRetriesSkippedMark) cannot write the mark
// before the Close or the append: they are what is tested here.
func TestSkippedMarkIsWrittenAgain(t *testing.T) {
	for _, next := range []string{"close", "failed append"} {
		t.Run(next, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := vfs.NewMem()
				var failMark, failGroup, noSpace atomic.Bool
				fsys := vfs.NewFaulty(mem, func(op vfs.Op) error {
					if noSpace.Load() && op.Kind == vfs.OpWrite && strings.Contains(op.Name, segment.CheckpointExt) {
						// The disk is full: Close's checkpoint, which would
						// also prove the group durable, cannot be written.
						return vfs.ENOSPC(op.Name)
					}
					if !isSegmentWrite(op) {
						return nil
					}
					if op.Len == segment.MarkFrameSize && failMark.CompareAndSwap(true, false) ||
						op.Len > segment.MarkFrameSize && failGroup.CompareAndSwap(true, false) {
						return vfs.ENOSPC(op.Name)
					}
					return nil
				})
				opts := Options{Sync: SyncAlways}
				l := openMem(t, fsys, opts)
				defer l.Close()
				appendN(t, l, "s", 2)
				failMark.Store(true)
				appendN(t, l, "s", 1) // its group is durable, its mark skipped
				if failMark.Load() {
					t.Fatal("no mark write failed: the test does not test what it claims")
				}
				n := l.LastSeq()
				switch next {
				case "close":
					noSpace.Store(true)
					if err := l.Close(); err != nil {
						t.Fatalf("Close: %v", err)
					}
				case "failed append":
					failGroup.Store(true)
					_, err := l.Append(t.Context(), "s", ExpectAny, Envelope{Type: "e"})
					if !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrWriterFailed) {
						t.Fatalf("append with no space: %v; want an ENOSPC error, the writer still usable", err)
					}
				}
				ro, err := openFS(vfs.ReadOnly(mem.Clone()), opts, true)
				if err != nil {
					t.Fatalf("read-only open: %v", err)
				}
				defer ro.Close()
				if got := ro.LastSeq(); got < n {
					t.Errorf("after the %s, a read-only open serves up to seq %d; the writer acknowledged %d", next, got, n)
				}
			})
		})
	}
}

// TestCloseFailsWhenTheMarkCannotBeWritten: when, at Close, the mark a
// lack of space skipped still cannot be written, Close reports it
// (matching syscall.ENOSPC, not ErrWriterFailed: the group is durable),
// as Save and Ack do, instead of returning nil for a log whose last
// acknowledged group a reader in another process does not serve. The
// next writer's Open records it.
func TestCloseFailsWhenTheMarkCannotBeWritten(t *testing.T) {
	mem := vfs.NewMem()
	var full atomic.Bool
	fsys := vfs.NewFaulty(mem, func(op vfs.Op) error {
		if full.Load() && op.Kind == vfs.OpWrite && (op.Len == segment.MarkFrameSize || strings.Contains(op.Name, segment.CheckpointExt)) {
			return vfs.ENOSPC(op.Name)
		}
		return nil
	})
	opts := Options{Sync: SyncAlways}
	l := openMem(t, fsys, opts)
	appendN(t, l, "s", 2)
	full.Store(true)
	appendN(t, l, "s", 1) // its group is durable, its mark skipped
	n := l.LastSeq()
	if err := l.Close(); !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrWriterFailed) {
		t.Fatalf("Close with no space for the mark: %v; want an ENOSPC error", err)
	}
	full.Store(false)
	w := openMem(t, fsys, opts)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := openFS(vfs.ReadOnly(mem.CrashClone(vfs.DropUnsynced, rand.New(rand.NewPCG(1, 2)))), opts, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got := ro.LastSeq(); got < n {
		t.Errorf("once a writer opened the log again, a read-only open serves up to seq %d; the first writer acknowledged %d", got, n)
	}
}
