package evlog

import (
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// segmentSyncs returns how many fsyncs c counted on segment files.
func segmentSyncs(t *testing.T, c *vfs.Counting) int64 {
	t.Helper()
	names, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, name := range names {
		if strings.HasSuffix(name, segment.Ext) {
			n += c.File(name).Syncs
		}
	}
	return n
}

// TestFirstSaveAfterOpenNeedsNoFsync: under SyncAlways a snapshot Save
// or Subscription.Ack first makes the mark covering its seq durable
// (servedAfterPowerLoss, markSynced), but markSynced started at 0 after
// an Open, although recovery fsyncs the newest segment: every mark on
// disk is durable once Open returns. So the first Save after an Open
// queued a Sync, and when recovery had to write a mark (a tail no mark
// recorded: a writer killed under SyncNever, or after a mark skipped for
// lack of space), that Sync fsynced it — one fsync per first Save or Ack
// instead of one at Open. After Open, a reader in another process must
// serve the whole log after a power loss, and the first Save must not
// fsync the segment.
func TestFirstSaveAfterOpenNeedsNoFsync(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T) *vfs.Mem // a log of 3 events, as a stopped writer left it
	}{
		{"closed", func(t *testing.T) *vfs.Mem {
			mem := vfs.NewMem()
			l := openMem(t, mem, Options{Sync: SyncAlways})
			appendN(t, l, "s", 3)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			return mem
		}},
		{"killed under SyncNever", func(t *testing.T) *vfs.Mem {
			mem := vfs.NewMem()
			l := openMem(t, mem, Options{Sync: SyncNever})
			t.Cleanup(func() { l.Close() })
			appendN(t, l, "s", 3)
			return mem.Clone() // the process is killed: the page cache stays
		}},
		{"killed after a skipped mark", func(t *testing.T) *vfs.Mem {
			// In a synctest bubble, so that the writer is killed (the
			// clone) before its timed retry (markRetry) writes the mark.
			var killed *vfs.Mem
			synctest.Test(t, func(t *testing.T) {
				mem := vfs.NewMem()
				var failMark atomic.Bool
				fsys := vfs.NewFaulty(mem, func(op vfs.Op) error {
					if isSegmentWrite(op) && op.Len == segment.MarkFrameSize && failMark.CompareAndSwap(true, false) {
						return vfs.ENOSPC(op.Name)
					}
					return nil
				})
				l := openMem(t, fsys, Options{Sync: SyncAlways})
				defer l.Close()
				appendN(t, l, "s", 2)
				failMark.Store(true)
				appendN(t, l, "s", 1)
				if failMark.Load() {
					t.Fatal("no mark write failed: the test does not test what it claims")
				}
				killed = mem.Clone()
			})
			return killed
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := tc.prepare(t)
			c := vfs.NewCounting(mem)
			opts := Options{Sync: SyncAlways}
			l := openMem(t, c, opts)
			defer l.Close()
			n := l.LastSeq()
			if n != 3 {
				t.Fatalf("reopened log ends at seq %d, want 3", n)
			}
			if !l.servedAfterPowerLoss(n) {
				t.Errorf("after Open, markSynced is %d: the first Save or Ack of seq %d queues a Sync, although Open made every mark durable", l.markSynced.Load(), n)
			}
			c.Reset()
			saveSnap(t, l, mustSnapshots(t, l), n)
			if got := segmentSyncs(t, c); got != 0 {
				t.Errorf("the first Save after Open fsynced the segment %d times, want 0 (Open's recovery should have made its marks durable)", got)
			}
			ro, err := openFS(vfs.ReadOnly(mem.CrashClone(vfs.DropUnsynced, rand.New(rand.NewPCG(1, 2)))), opts, true)
			if err != nil {
				t.Fatalf("read-only open after a power loss: %v", err)
			}
			defer ro.Close()
			if got := ro.LastSeq(); got < n {
				t.Errorf("after a power loss a read-only open serves up to seq %d, but a snapshot was saved at %d", got, n)
			}
		})
	}
}
