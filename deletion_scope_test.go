package evlog

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/replay"
)

var (
	_ replay.ScopedDeletions = (*Log)(nil)
	_ replay.Expirations     = (*Log)(nil)
)

// scopedView opens a log on fsys (opts, with a clock of its own and
// retention of an hour for category "old") holding an event in each of
// "old-1", "old-2", "keep-1" (seqs 2..4 after the retention record at
// seq 1; payload: the stream's name), saves the snapshot of subj through
// seq 4, and returns the log and a
// function that moves the clock two hours on (old-1 and old-2 expire).
func scopedView(t *testing.T, fsys vfs.FS, opts Options, subj replay.Subject) (*Log, func()) {
	t.Helper()
	ctx := t.Context()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var now atomic.Int64
	now.Store(t0.UnixNano())
	opts.Clock = func() time.Time { return time.Unix(0, now.Load()).UTC() }
	opts.Retention = map[string]Retention{"old": {MaxAge: time.Hour}}
	l := openMem(t, fsys, opts)
	t.Cleanup(func() { l.Close() })
	for _, s := range []string{"old-1", "old-2", "keep-1"} {
		if _, err := l.Append(ctx, s, ExpectAny, Envelope{Type: "e", Data: []byte(s)}); err != nil {
			t.Fatal(err)
		}
	}
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	res, err := replay.State(ctx, l, snaps, subj, replay.Latest(), derivedSpec, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := replay.Save(ctx, snaps, l.LogID(), subj, derivedSpec, res); err != nil {
		t.Fatal(err)
	}
	return l, func() { now.Store(t0.Add(2 * time.Hour).UnixNano()) }
}

// TestDeletionStalesOnlySnapshotsOfItsScope: a snapshot is passed over
// only for a deletion after it of a stream in its subject's scope, and
// when folding again in its place would lose the effect of events it
// folded that have expired since, the plan fails with ErrHistoryLost
// naming the snapshot, the deletion and the expired event, unless the
// caller asks for a fold without snapshots.
func TestDeletionStalesOnlySnapshotsOfItsScope(t *testing.T) {
	whole := replay.Subject{Name: "view"}
	old := replay.Subject{Name: "view-old", Scope: replay.Scope{Categories: []string{"old"}}}
	type lost struct {
		DeletionSeq   uint64
		DeletedStream string
		ExpiredSeq    uint64
		SnapshotSeq   uint64
	}
	for _, tc := range []struct {
		name       string
		subj       replay.Subject
		delete     string
		expire     bool
		noSnapshot bool
		want       []string // the state (nil: the plan fails)
		fromSnap   bool
		lost       *lost
	}{
		{name: "another category, expired", subj: old, delete: "keep-1", expire: true, want: []string{"old-1", "old-2"}, fromSnap: true},
		{name: "whole log, not expired", subj: whole, delete: "keep-1", want: []string{"old-1", "old-2"}},
		{name: "whole log, expired", subj: whole, delete: "keep-1", expire: true,
			lost: &lost{DeletionSeq: 5, DeletedStream: "keep-1", ExpiredSeq: 2, SnapshotSeq: 4}},
		{name: "whole log, expired, no snapshot", subj: whole, delete: "keep-1", expire: true, noSnapshot: true, want: []string{}},
		{name: "in scope, the other expired", subj: old, delete: "old-1", expire: true,
			lost: &lost{DeletionSeq: 5, DeletedStream: "old-1", ExpiredSeq: 3, SnapshotSeq: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			l, expire := scopedView(t, vfs.NewMem(), Options{}, tc.subj)
			if tc.expire {
				expire()
			}
			if _, _, err := l.DeleteStream(ctx, tc.delete); err != nil {
				t.Fatal(err)
			}
			snaps, err := l.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			res, err := replay.State(ctx, l, snaps, tc.subj, replay.Latest(), derivedSpec, replay.Options{NoSnapshot: tc.noSnapshot})
			if tc.lost != nil {
				hl, ok := errors.AsType[*replay.HistoryLostError](err)
				if !ok || !errors.Is(err, replay.ErrHistoryLost) {
					t.Fatalf("State = %q (snapshot %v, fallbacks %+v), %v; want an ErrHistoryLost", res.State, res.Plan.Snapshot, res.Plan.Fallbacks, err)
				}
				got := lost{hl.DeletionSeq, hl.DeletedStream, hl.ExpiredSeq, hl.Snapshot.Seq}
				if diff := cmp.Diff(*tc.lost, got); diff != "" || hl.Subject != tc.subj.Name || hl.Snapshot.File == "" {
					t.Errorf("HistoryLostError %+v (-want +got):\n%s", hl, diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.State, tc.want) || (res.Plan.Snapshot != nil) != tc.fromSnap {
				t.Errorf("state %q (snapshot %v, fallbacks %+v), want %q (from the snapshot: %v)", res.State, res.Plan.Snapshot, res.Plan.Fallbacks, tc.want, tc.fromSnap)
			}
		})
	}
}

// TestHistoryLostAfterCompaction: a reader opened without Options.Retention
// (as evlogctl opens a log; it applies the recorded retention) still tells that events a stale snapshot
// folded are gone once Compact has replaced them by placeholders.
func TestHistoryLostAfterCompaction(t *testing.T) {
	ctx := t.Context()
	fsys := vfs.NewMem()
	whole := replay.Subject{Name: "view"}
	l, expire := scopedView(t, fsys, Options{SegmentSize: MinSegmentSize}, whole)
	for i := 0; len(l.v.segs) < 3; i++ { // seal the segment of seqs 1..4
		if _, err := l.Append(ctx, "keep-2", ExpectAny, Envelope{Type: "e", Data: derivedPayload("keep", i)}); err != nil {
			t.Fatal(err)
		}
	}
	expire()
	if _, err := l.Compact(ctx, CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.DeleteStream(ctx, "keep-1"); err != nil {
		t.Fatal(err)
	}
	r, err := openFS(fsys, Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	snaps, err := r.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	_, err = replay.MakePlan(ctx, r, snaps, whole, replay.AtSeq(4), replay.Options{})
	if hl, ok := errors.AsType[*replay.HistoryLostError](err); !ok || hl.ExpiredSeq != 2 || hl.DeletedStream != "keep-1" {
		t.Fatalf("MakePlan: %v; want a HistoryLostError naming seq 2 and keep-1's deletion", err)
	}
}
