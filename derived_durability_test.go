package evlog

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

// killedMidSeal returns the directory a writer under SyncNever leaves when
// its process is killed during its first roll, between writing the seal of
// the first segment and fsyncing it: the second segment exists (empty,
// created durably), the first is sealed in the page cache, and none of its
// events is durable. It also returns the number of events in it.
func killedMidSeal(t *testing.T) (*vfs.Mem, uint64) {
	t.Helper()
	mem := vfs.NewMem()
	first := segment.FormatFileName(1, 0)
	var killed *vfs.Mem
	syncs := 0
	faulty := vfs.NewFaulty(mem, func(op vfs.Op) error {
		// The handle keeps the name it was created under, the temporary's.
		if op.Kind == vfs.OpSync && strings.HasPrefix(op.Name, first) {
			// The first is the header's, at creation; the next the seal's.
			if syncs++; syncs == 2 && killed == nil {
				killed = mem.Clone()
			}
		}
		return nil
	})
	opts := Options{Sync: SyncNever, SegmentSize: 4 << 10}
	l := openMem(t, faulty, opts)
	for i := 0; killed == nil; i++ {
		if i == 1000 {
			t.Fatal("no roll after 1000 appends")
		}
		appendN(t, l, "s", 1)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := segNames(t, killed); len(got) != 2 {
		t.Fatalf("killed mid-seal, the directory holds segments %v, want 2", got)
	}
	probe := openMem(t, killed.Clone(), Options{Sync: SyncNever})
	defer probe.Close()
	n := probe.LastSeq()
	if n == 0 {
		t.Fatal("the killed writer's first segment holds no event")
	}
	return killed, n
}

// TestDurableAfterKillMidSeal: after a writer under SyncNever is killed
// between the seal of a segment and its fsync, what is made durable next
// — by the reopened writer's Sync, a snapshot saved through its store or
// a SnapshotWriter's, a subscription's Ack — survives a power loss: the
// log keeps every event up to the seq claimed durable, and the snapshot
// is usable (not one claiming a seq beyond the end of the log, whose seqs
// new appends would re-use).
func TestDurableAfterKillMidSeal(t *testing.T) {
	opts := Options{Sync: SyncNever}
	for _, tc := range []struct {
		name string
		// durable makes the events up to seq durable on fsys and says
		// whether it saved a snapshot named "s".
		durable func(t *testing.T, fsys vfs.FS, seq uint64) (snap bool)
	}{
		{"Sync", func(t *testing.T, fsys vfs.FS, seq uint64) bool {
			l := openMem(t, fsys, opts)
			defer l.Close()
			if err := l.Sync(t.Context()); err != nil {
				t.Fatal(err)
			}
			if d := l.DurableSeq(); d < seq {
				t.Fatalf("DurableSeq %d after Sync, want %d", d, seq)
			}
			return false
		}},
		{"Snapshots.Save", func(t *testing.T, fsys vfs.FS, seq uint64) bool {
			l := openMem(t, fsys, opts)
			defer l.Close()
			saveSnap(t, l, mustSnapshots(t, l), seq)
			return true
		}},
		{"Subscription.Ack", func(t *testing.T, fsys vfs.FS, seq uint64) bool {
			l := openMem(t, fsys, opts)
			defer l.Close()
			sub, err := l.Subscription("sub", Filter{})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if err := sub.Ack(t.Context(), seq); err != nil {
				t.Fatal(err)
			}
			return false
		}},
		{"SnapshotWriter.Save", func(t *testing.T, fsys vfs.FS, seq uint64) bool {
			w := snapshotWriterOn(t, fsys, opts)
			defer w.Close()
			saveSnap(t, w.Log(), w.Snapshots(), seq)
			return true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			killed, n := killedMidSeal(t)
			snap := tc.durable(t, killed, n)
			lost := killed.CrashClone(vfs.DropUnsynced, rand.New(rand.NewPCG(1, 2)))
			l, err := openFS(lost, opts, false)
			if err != nil {
				t.Fatalf("open after the power loss: %v", err)
			}
			defer l.Close()
			if got := l.LastSeq(); got < n {
				t.Fatalf("after the power loss the log ends at seq %d; seq %d was made durable", got, n)
			}
			if !snap {
				return
			}
			p, err := replay.MakePlan(t.Context(), l, mustSnapshots(t, l), replay.Subject{Name: "s"}, replay.Latest(), replay.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Snapshot == nil || p.Snapshot.Seq != n {
				t.Fatalf("plan starts from snapshot %v (fallbacks %v), want the one at seq %d", p.Snapshot, p.Fallbacks, n)
			}
		})
	}
}

func mustSnapshots(t *testing.T, l *Log) *snapshot.Store {
	t.Helper()
	s, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// saveSnap saves a snapshot "s" of l at seq (anchored at its event's time).
func saveSnap(t *testing.T, l *Log, s *snapshot.Store, seq uint64) {
	t.Helper()
	var at Envelope
	for e, err := range l.Events(t.Context(), seq) {
		if err != nil {
			t.Fatal(err)
		}
		at = e
		break
	}
	if at.Seq != seq {
		t.Fatalf("no event at seq %d", seq)
	}
	if _, err := s.Save(context.WithoutCancel(t.Context()), snapshot.Meta{Name: "s", LogID: l.LogID(), Seq: seq, Time: at.Time}, []byte("state")); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotSaveMakesTheLogDurable: under SyncNever and SyncInterval a
// snapshot saved through the writer's store, or through a SnapshotWriter
// beside the live writer, is saved only once the events it folds are
// durable: after a power loss right after the Save, the log still holds
// them and replay starts from the snapshot.
func TestSnapshotSaveMakesTheLogDurable(t *testing.T) {
	for _, mode := range []SyncMode{SyncNever, SyncInterval(time.Hour)} {
		for _, beside := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/SnapshotWriter=%v", mode, beside), func(t *testing.T) {
				mem := vfs.NewMem()
				opts := Options{Sync: mode}
				l := openMem(t, mem, opts)
				defer l.Close()
				appendN(t, l, "s", 20)
				n := l.LastSeq()
				if d := l.DurableSeq(); d >= n {
					t.Fatalf("DurableSeq %d before the Save: the test needs events not yet durable", d)
				}
				if beside {
					w := snapshotWriterOn(t, mem, opts)
					defer w.Close()
					saveSnap(t, w.Log(), w.Snapshots(), n)
				} else {
					saveSnap(t, l, mustSnapshots(t, l), n)
				}
				lost := mem.CrashClone(vfs.DropUnsynced, rand.New(rand.NewPCG(1, 2)))
				l2, err := openFS(lost, opts, false)
				if err != nil {
					t.Fatalf("open after the power loss: %v", err)
				}
				defer l2.Close()
				if got := l2.LastSeq(); got < n {
					t.Fatalf("after the power loss the log ends at seq %d, before the snapshot's %d", got, n)
				}
				p, err := replay.MakePlan(t.Context(), l2, mustSnapshots(t, l2), replay.Subject{Name: "s"}, replay.Latest(), replay.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if p.Snapshot == nil || p.Snapshot.Seq != n {
					t.Fatalf("plan starts from snapshot %v (fallbacks %v), want the one at seq %d", p.Snapshot, p.Fallbacks, n)
				}
			})
		}
	}
}

// TestSnapshotWriterSaveBesideCompaction: a SnapshotWriter whose view
// (not refreshed) still lists as active a segment the writer has since
// sealed and compacted away saves its snapshot: a segment gone from the
// directory was made durable before it went (sealed, then replaced by a
// durable output), so there is nothing left to fsync.
func TestSnapshotWriterSaveBesideCompaction(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	opts := Options{Sync: SyncNever, SegmentSize: 4 << 10}
	l := openMem(t, mem, opts)
	defer l.Close()
	for len(segNames(t, mem)) < 2 {
		appendN(t, l, "s", 1)
	}
	appendN(t, l, "s", 1) // an event in the new active segment
	w := snapshotWriterOn(t, mem, opts)
	defer w.Close()
	active := segNames(t, mem)[1]
	for slices.Contains(segNames(t, mem), active) {
		appendN(t, l, "s", 1)
		if len(segNames(t, mem)) > 2 {
			if _, err := l.Compact(ctx, CompactOptions{Compress: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	saveSnap(t, w.Log(), w.Snapshots(), w.Log().LastSeq())
}

// snapshotWriterOn opens a SnapshotWriter on fsys with opts.
func snapshotWriterOn(t *testing.T, fsys vfs.FS, opts Options) *SnapshotWriter {
	t.Helper()
	o, err := opts.resolve()
	if err != nil {
		t.Fatal(err)
	}
	w, err := openSnapshotWriter(fsys, o)
	if err != nil {
		t.Fatal(err)
	}
	return w
}
