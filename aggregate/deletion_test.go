package aggregate_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
)

// TestRepositoryAfterDeletion: after a stream is truncated or
// soft-deleted, neither the repository's cache nor its snapshots keep
// serving the deleted events' effect, a new repository (snapshots only)
// agrees, and commands continue the stream after the deleted versions.
func TestRepositoryAfterDeletion(t *testing.T) {
	ctx := t.Context()
	l, r := newRepo(t, aggregate.Options{}, evlog.Options{})
	for range 5 {
		if _, err := r.Execute(ctx, "a", add("x", 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Snapshot(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if inst, err := r.Load(ctx, "a"); err != nil || inst.State.N["x"] != 5 {
		t.Fatalf("before deleting: %+v, %v", inst, err)
	}
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	fresh := func() *aggregate.Repository[counter, evlog.Event[inc]] {
		r := aggregate.NewRepository(l, snaps, counterDef, aggregate.Codec[evlog.Event[inc]](evlog.NewCodec[inc](nil)), aggregate.Options{})
		t.Cleanup(func() { r.Close() })
		return r
	}
	type got struct {
		X, Version int
	}
	load := func(r *aggregate.Repository[counter, evlog.Event[inc]]) got {
		t.Helper()
		inst, err := r.Load(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		return got{inst.State.N["x"], int(inst.Version)}
	}

	if _, err := l.TruncateStream(ctx, "counter-a", 4); err != nil {
		t.Fatal(err)
	}
	want := got{2, 5} // versions 4 and 5
	if diff := cmp.Diff(want, load(r)); diff != "" {
		t.Errorf("cached repository after truncating (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, load(fresh())); diff != "" {
		t.Errorf("new repository (snapshot from before the truncation) (-want +got):\n%s", diff)
	}
	if _, err := r.Execute(ctx, "a", add("x", 1)); err != nil {
		t.Fatalf("a command after truncating: %v", err)
	}

	if _, _, err := l.DeleteStream(ctx, "counter-a"); err != nil {
		t.Fatal(err)
	}
	want = got{0, 6}
	if diff := cmp.Diff(want, load(r)); diff != "" {
		t.Errorf("cached repository after deleting (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, load(fresh())); diff != "" {
		t.Errorf("new repository after deleting (-want +got):\n%s", diff)
	}
	res, err := r.Execute(ctx, "a", add("x", 1))
	if err != nil {
		t.Fatalf("a command after deleting: %v", err)
	}
	if res.Instance.State.N["x"] != 1 || res.Instance.Version != 7 {
		t.Errorf("after a command on the deleted stream: %+v", res.Instance)
	}
}
