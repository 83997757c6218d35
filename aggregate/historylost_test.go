package aggregate_test

import (
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/replay"
)

// historyLost builds, in dir, instance "a" of counterDef whose history is
// lost: versions 1..3 (seqs 2..4, after the retention record at seq 1;
// keys a, b, c) recorded at t0 and snapshotted at seq 4, version 4 (key d)
// two hours later once 1..3 have expired (category "counter" keeps an
// hour), and then a truncation of version 1 (the marker at seq 6). The snapshot holds deleted data and
// versions 2 and 3 are gone by retention: folding again would lose them.
// It returns the opener of the log (a fresh *evlog.Log on dir, the clock
// at t0+2h; the caller closes it).
func historyLost(t *testing.T) (open func() *evlog.Log) {
	t.Helper()
	var now atomic.Int64
	return historyLostClock(t, &now)
}

// historyLostClock is historyLost with the log's clock in now (UnixNano),
// for the caller to move on.
func historyLostClock(t *testing.T, now *atomic.Int64) (open func() *evlog.Log) {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now.Store(t0.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	open = func() *evlog.Log {
		t.Helper()
		l, err := evlog.Open(dir, evlog.Options{Clock: clock, Retention: map[string]evlog.Retention{"counter": {MaxAge: time.Hour}}})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := open()
	defer l.Close()
	r := counterRepo(t, l)
	defer r.Close()
	for i, key := range []string{"a", "b", "c"} {
		if _, err := r.Execute(ctx, "a", add(key, 1<<i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Snapshot(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	now.Store(t0.Add(2 * time.Hour).UnixNano())
	if _, err := r.Execute(ctx, "a", add("d", 8)); err != nil { // from the snapshot
		t.Fatal(err)
	}
	if _, err := l.TruncateStream(ctx, "counter-a", 2); err != nil {
		t.Fatal(err)
	}
	return open
}

func counterRepo(t *testing.T, l *evlog.Log) *aggregate.Repository[counter, evlog.Event[inc]] {
	t.Helper()
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	return aggregate.NewRepository(l, snaps, counterDef, aggregate.Codec[evlog.Event[inc]](evlog.NewCodec[inc](nil)), aggregate.Options{})
}

// snapshotSeqs lists the seqs of instance a's snapshots, newest first.
func snapshotSeqs(t *testing.T, l *evlog.Log, r *aggregate.Repository[counter, evlog.Event[inc]]) []uint64 {
	t.Helper()
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for c, err := range snaps.Candidates(r.Subject("a").Name, math.MaxUint64) {
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, c.Meta.Seq)
	}
	return seqs
}

type counterGot struct {
	N       map[string]int
	Version uint64
}

// TestRepositoryRebuildAfterHistoryLost: when a deletion made an
// instance's snapshot stale and events it folded have expired since, Load
// and Execute fail with replay.ErrHistoryLost, and keep failing (in this
// process, after a restart, with the snapshot left in place) until the
// application calls Rebuild. Rebuild folds the events the stream still
// holds, removes the stale snapshot (durably: a restart does not ask
// again), and commands then continue the stream after its last version.
func TestRepositoryRebuildAfterHistoryLost(t *testing.T) {
	ctx := t.Context()
	open := historyLost(t)
	l := open()
	r := counterRepo(t, l)

	for _, call := range []struct {
		name string
		do   func() error
	}{
		{"Load", func() error { _, err := r.Load(ctx, "a"); return err }},
		{"Execute", func() error { _, err := r.Execute(ctx, "a", add("e", 16)); return err }},
		{"Load again", func() error { _, err := r.Load(ctx, "a"); return err }},
	} {
		err := call.do()
		hl, ok := errors.AsType[*replay.HistoryLostError](err)
		if !ok || !errors.Is(err, replay.ErrHistoryLost) {
			t.Fatalf("%s before Rebuild: %v; want a *replay.HistoryLostError", call.name, err)
		}
		if hl.ExpiredSeq != 3 || hl.DeletionSeq != 6 || hl.Snapshot.Seq != 4 {
			t.Errorf("%s: HistoryLostError %+v, want the snapshot at seq 4, the deletion at seq 6, the expired event at seq 3", call.name, hl)
		}
	}
	if diff := cmp.Diff([]uint64{4}, snapshotSeqs(t, l, r)); diff != "" {
		t.Errorf("snapshots before Rebuild (-want +got):\n%s", diff)
	}
	// Without Rebuild nothing changes, not even after a restart.
	r.Close()
	l.Close()
	l = open()
	defer func() { l.Close() }()
	r = counterRepo(t, l)
	if _, err := r.Load(ctx, "a"); !errors.Is(err, replay.ErrHistoryLost) {
		t.Fatalf("Load after a restart without Rebuild: %v, want ErrHistoryLost", err)
	}

	// Versions 2 and 3 (keys b, c) are lost; version 4 (d) is folded
	// again; the version stays 4.
	want := counterGot{N: map[string]int{"d": 8}, Version: 4}
	inst, err := r.Rebuild(ctx, "a")
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if diff := cmp.Diff(want, counterGot{inst.State.N, inst.Version}); diff != "" {
		t.Errorf("Rebuild's instance (-want +got):\n%s", diff)
	}
	if seqs := snapshotSeqs(t, l, r); len(seqs) != 0 {
		t.Errorf("snapshots after Rebuild: seqs %v, want none (the stale one removed)", seqs)
	}
	got, err := r.Load(ctx, "a")
	if err != nil {
		t.Fatalf("Load after Rebuild: %v", err)
	}
	if diff := cmp.Diff(want, counterGot{got.State.N, got.Version}); diff != "" {
		t.Errorf("Load after Rebuild (-want +got):\n%s", diff)
	}
	res, err := r.Execute(ctx, "a", add("e", 16))
	if err != nil {
		t.Fatalf("Execute after Rebuild: %v", err)
	}
	want = counterGot{N: map[string]int{"d": 8, "e": 16}, Version: 5}
	if diff := cmp.Diff(want, counterGot{res.State.N, res.Version}); diff != "" {
		t.Errorf("Execute after Rebuild (-want +got):\n%s", diff)
	}

	// The choice survives a restart: the instance loads without asking
	// again, before and after a snapshot of the rebuilt state.
	for _, snap := range []bool{false, true} {
		r.Close()
		l.Close()
		l = open()
		r = counterRepo(t, l)
		got, err := r.Load(ctx, "a")
		if err != nil {
			t.Fatalf("Load after a restart (snapshot taken: %v): %v", snap, err)
		}
		if diff := cmp.Diff(want, counterGot{got.State.N, got.Version}); diff != "" {
			t.Errorf("Load after a restart (snapshot taken: %v) (-want +got):\n%s", snap, diff)
		}
		if !snap {
			if _, err := r.Execute(ctx, "a", add("e", 0)); err != nil { // lands after the deletion
				t.Fatal(err)
			}
			want.Version++
			if err := r.Snapshot(ctx, "a"); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.Close()
}

// TestRepositoryRebuildIsIdempotent: Rebuild with no loss pending (called
// again, or on an instance never damaged) changes nothing Load returns.
func TestRepositoryRebuildIsIdempotent(t *testing.T) {
	ctx := t.Context()
	open := historyLost(t)
	l := open()
	defer l.Close()
	r := counterRepo(t, l)
	defer r.Close()
	for _, id := range []string{"a", "a", "new"} {
		inst, err := r.Rebuild(ctx, id)
		if err != nil {
			t.Fatalf("Rebuild(%s): %v", id, err)
		}
		loaded, err := r.Load(ctx, id)
		if err != nil {
			t.Fatalf("Load(%s) after Rebuild: %v", id, err)
		}
		if diff := cmp.Diff(counterGot{loaded.State.N, loaded.Version}, counterGot{inst.State.N, inst.Version}); diff != "" {
			t.Errorf("Rebuild(%s) vs Load (-load +rebuild):\n%s", id, diff)
		}
	}
}

// noRemove is a snapshot store that cannot remove a snapshot.
type noRemove struct{ replay.SnapshotStore }

// TestRepositoryRebuildNeedsRemove: with a snapshot store that cannot
// remove the stale snapshot, the choice could not be recorded: Rebuild
// fails with errors.ErrUnsupported and Load still reports the loss.
func TestRepositoryRebuildNeedsRemove(t *testing.T) {
	ctx := t.Context()
	open := historyLost(t)
	l := open()
	defer l.Close()
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	var store replay.SnapshotStore = noRemove{snaps}
	r := aggregate.NewRepository(l, store, counterDef, aggregate.Codec[evlog.Event[inc]](evlog.NewCodec[inc](nil)), aggregate.Options{})
	defer r.Close()
	if _, err := r.Rebuild(ctx, "a"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Rebuild over a store without Remove: %v, want errors.ErrUnsupported", err)
	}
	if _, err := r.Load(ctx, "a"); !errors.Is(err, replay.ErrHistoryLost) {
		t.Errorf("Load after a failed Rebuild: %v, want ErrHistoryLost", err)
	}
}

// TestRepositoryRebuiltDeletionNoFalseLoss: after Rebuild, the events
// that had expired before it (versions 2 and 3) were never folded into the
// rebuilt state, so a later deletion making its snapshot stale folds again
// losing nothing. The repository's snapshots did not record them
// (Instance carried no Unfolded), and Load failed with
// replay.ErrHistoryLost at the next deletion after a Rebuild, naming seq
// 3. An event the rebuilt state did fold (version 4, seq 5) that expires
// afterwards is still a loss, and is the one reported.
func TestRepositoryRebuiltDeletionNoFalseLoss(t *testing.T) {
	for _, tc := range []struct {
		name string
		// restart: the second deletion and the Load happen in a new
		// process (the snapshot read from its file).
		restart bool
		// foldedExpires: version 4, which the rebuilt state folded,
		// expires before the second deletion.
		foldedExpires bool
	}{
		{name: "same repository"},
		{name: "restart", restart: true},
		{name: "same repository, a folded event expires", foldedExpires: true},
		{name: "restart, a folded event expires", restart: true, foldedExpires: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			var now atomic.Int64
			open := historyLostClock(t, &now) // the clock at t0+2h
			l := open()
			defer func() { l.Close() }()
			r := counterRepo(t, l)
			defer func() { r.Close() }()
			if _, err := r.Rebuild(ctx, "a"); err != nil {
				t.Fatalf("Rebuild: %v", err)
			}
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			now.Store(t0.Add(150 * time.Minute).UnixNano())
			// Version 5 at seq 7; the snapshot at seq 7 is of the
			// rebuilt state, by Execute's cached instance.
			if _, err := r.Execute(ctx, "a", add("e", 16)); err != nil {
				t.Fatal(err)
			}
			if err := r.Snapshot(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]uint64{7}, snapshotSeqs(t, l, r)); diff != "" {
				t.Fatalf("snapshots after Rebuild and Execute (-want +got):\n%s", diff)
			}
			if tc.foldedExpires {
				now.Store(t0.Add(195 * time.Minute).UnixNano()) // version 4 (t0+2h) expires, not 5
			}
			if tc.restart {
				r.Close()
				l.Close()
				l = open()
				r = counterRepo(t, l)
			}
			// Truncating again below version 2 deletes nothing more but
			// makes the snapshot at seq 7 stale (the marker at seq 8).
			if _, err := l.TruncateStream(ctx, "counter-a", 2); err != nil {
				t.Fatal(err)
			}
			got, err := r.Load(ctx, "a")
			if tc.foldedExpires {
				hl, ok := errors.AsType[*replay.HistoryLostError](err)
				if !ok || hl.ExpiredSeq != 5 || hl.DeletionSeq != 8 {
					t.Fatalf("Load after the deletion, version 4 expired: %v, want a *replay.HistoryLostError naming the expired seq 5 and the deletion at seq 8", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load after the second deletion: %v, want the state folded again (seqs 3 and 4 expired before the rebuilt state folded them)", err)
			}
			want := counterGot{N: map[string]int{"d": 8, "e": 16}, Version: 5}
			if diff := cmp.Diff(want, counterGot{got.State.N, got.Version}); diff != "" {
				t.Errorf("Load after the second deletion (-want +got):\n%s", diff)
			}
		})
	}
}
