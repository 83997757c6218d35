package aggregate_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/replay"
)

// TestRepositoryExpiredAfterSnapshot: an instance whose events after its
// snapshot expired before they were folded (a stream's Retention.MaxCount
// shorter than its snapshot interval) used to load as the snapshot plus
// the events left, silently missing the expired ones. Load must fail with
// replay.ErrExpiredUnfolded naming the first, and Rebuild must remove the
// snapshots before it and load the events that are left.
func TestRepositoryExpiredAfterSnapshot(t *testing.T) {
	ctx := t.Context()
	l, err := evlog.Open(t.TempDir(), evlog.Options{Retention: map[string]evlog.Retention{"counter": {MaxCount: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	repo := func() *aggregate.Repository[counter, evlog.Event[inc]] {
		r := aggregate.NewRepository(l, snaps, counterDef, aggregate.Codec[evlog.Event[inc]](evlog.NewCodec[inc](nil)), aggregate.Options{})
		t.Cleanup(func() { r.Close() })
		return r
	}
	r := repo()
	if _, err := r.Execute(ctx, "a", add("x", 1)); err != nil {
		t.Fatal(err)
	}
	if err := r.Snapshot(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	var expired uint64
	for i := range 2 { // the first expires when the second is appended
		res, err := r.Execute(ctx, "a", add("x", 1))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			expired = res.Seq
		}
	}
	r = repo()
	inst, err := r.Load(ctx, "a")
	if eu, ok := errors.AsType[*replay.ExpiredUnfoldedError](err); !ok || eu.ExpiredSeq != expired {
		t.Fatalf("Load: %v (x=%d at version %d), want a *replay.ExpiredUnfoldedError naming seq %d", err, inst.State.N["x"], inst.Version, expired)
	}
	inst, err = r.Rebuild(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	type got struct{ X, Version int }
	if diff := cmp.Diff(got{1, 3}, got{inst.State.N["x"], int(inst.Version)}); diff != "" {
		t.Errorf("rebuilt (-the events left +got):\n%s", diff)
	}
	if _, err := repo().Load(ctx, "a"); err != nil {
		t.Errorf("Load after Rebuild, in a new repository: %v", err)
	}
}
