package aggregate_test

import (
	"context"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/snapshot"
)

type ctxKey struct{}

// ctxSnaps records whether Save and Prune got the caller's context.
type ctxSnaps struct {
	aggregate.Snapshots
	got []bool
}

func (c *ctxSnaps) Save(ctx context.Context, m snapshot.Meta, state []byte) (snapshot.Meta, error) {
	c.got = append(c.got, ctx.Value(ctxKey{}) != nil)
	return c.Snapshots.Save(ctx, m, state)
}

func (c *ctxSnaps) Prune(ctx context.Context, name string, p snapshot.PrunePolicy) ([]snapshot.Meta, error) {
	c.got = append(c.got, ctx.Value(ctxKey{}) != nil)
	return c.Snapshots.Prune(ctx, name, p)
}

// TestSnapshotUsesCallersContext: Repository.Snapshot saves and prunes
// with its caller's context (a save that first syncs the log can block);
// it used context.Background, so neither cancellation nor deadlines
// reached them.
func TestSnapshotUsesCallersContext(t *testing.T) {
	l, err := evlog.Open(t.TempDir(), evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	snaps := &ctxSnaps{Snapshots: store}
	r := aggregate.NewRepository(l, aggregate.Snapshots(snaps), counterDef, aggregate.Codec[evlog.Event[inc]](evlog.NewCodec[inc](nil)), aggregate.Options{})
	defer r.Close()
	ctx := context.WithValue(t.Context(), ctxKey{}, true)
	if _, err := r.Execute(ctx, "a", add("x", 1)); err != nil {
		t.Fatal(err)
	}
	if err := r.Snapshot(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if len(snaps.got) != 2 || !snaps.got[0] || !snaps.got[1] {
		t.Fatalf("Save and Prune got the caller's context: %v, want [true true]", snaps.got)
	}
}
