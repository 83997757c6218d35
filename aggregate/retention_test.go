package aggregate_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/replay"
)

// TestRepositoryAfterRetention: once an instance's events are older than
// its category's Retention.MaxAge, a snapshot keeps their effect (as
// docs/FORMAT.md promises: "a snapshot that folded events since expired
// is how their effect is kept"), and commands continue the stream after
// its versions, snapshot or not. The snapshot used to be passed over
// ("its last event is not in the log"), the state came back empty at
// version 0, and every command then failed with ErrTooManyConflicts
// against the stream's real version.
func TestRepositoryAfterRetention(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var now atomic.Int64
	now.Store(t0.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	l, err := evlog.Open(t.TempDir(), evlog.Options{Clock: clock, Retention: map[string]evlog.Retention{"counter": {MaxAge: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	repo := func() *aggregate.Repository[counter, evlog.Event[inc]] {
		r := aggregate.NewRepository(l, snaps, counterDef, aggregate.Codec[evlog.Event[inc]](evlog.NewCodec[inc](nil)), aggregate.Options{Clock: clock})
		t.Cleanup(func() { r.Close() })
		return r
	}
	r := repo()
	for range 3 {
		if _, err := r.Execute(ctx, "a", add("x", 1)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := r.Execute(ctx, "b", add("x", 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Snapshot(ctx, "a"); err != nil { // b has none
		t.Fatal(err)
	}
	now.Store(t0.Add(2 * time.Hour).UnixNano()) // every event expired

	type got struct{ X, Version int }
	load := func(r *aggregate.Repository[counter, evlog.Event[inc]], id string) got {
		t.Helper()
		inst, err := r.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return got{inst.State.N["x"], int(inst.Version)}
	}
	r = repo()
	if diff := cmp.Diff(got{3, 3}, load(r, "a")); diff != "" {
		t.Errorf("a, from its snapshot (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(got{0, 2}, load(r, "b")); diff != "" {
		t.Errorf("b, without a snapshot (-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		id   string
		want got
	}{{"a", got{4, 4}}, {"b", got{1, 3}}} {
		res, err := r.Execute(ctx, c.id, add("x", 1))
		if err != nil {
			t.Errorf("a command on %s after its events expired: %v", c.id, err)
			continue
		}
		if diff := cmp.Diff(c.want, got{res.State.N["x"], int(res.Version)}); diff != "" {
			t.Errorf("%s after a command (-want +got):\n%s", c.id, diff)
		}
	}
}

// TestRepositoryKeepsSnapshotAcrossUnrelatedDeletion: an instance's
// snapshot is kept when a deletion after it removed events of another
// stream only. It used to be passed over for any deletion newer than it
// ("before the deletion at seq N"), and the instance was folded again
// from its events, which retention had expired meanwhile: its state came
// back without them.
func TestRepositoryKeepsSnapshotAcrossUnrelatedDeletion(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var now atomic.Int64
	now.Store(t0.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	l, err := evlog.Open(t.TempDir(), evlog.Options{Clock: clock, Retention: map[string]evlog.Retention{"counter": {MaxAge: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	codec := aggregate.Codec[evlog.Event[inc]](evlog.NewCodec[inc](nil))
	r := aggregate.NewRepository(l, snaps, counterDef, codec, aggregate.Options{Clock: clock})
	defer r.Close()
	for range 3 {
		if _, err := r.Execute(ctx, "a", add("x", 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Snapshot(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "other-1", evlog.ExpectAny, evlog.Envelope{Type: "e"}); err != nil {
		t.Fatal(err)
	}
	now.Store(t0.Add(2 * time.Hour).UnixNano()) // a's events expire
	if _, _, err := l.DeleteStream(ctx, "other-1"); err != nil {
		t.Fatal(err)
	}

	r2 := aggregate.NewRepository(l, snaps, counterDef, codec, aggregate.Options{Clock: clock})
	defer r2.Close()
	res, err := r2.At(ctx, "a", replay.Latest())
	if err != nil {
		t.Fatal(err)
	}
	type got struct{ X, Version int }
	if diff := cmp.Diff(got{3, 3}, got{res.State.N["x"], int(res.Version)}); diff != "" {
		t.Errorf("a after a deletion of another stream (-want +got):\n%s\nplan: snapshot %v, fallbacks %+v", diff, res.Plan.Snapshot, res.Plan.Fallbacks)
	}
}
