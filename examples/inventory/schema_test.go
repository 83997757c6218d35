package inventory_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/examples/inventory"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/replay"
)

// TestSchemaEvolution: a log written by the first version of the game —
// bare item names (schema version 1) and an event type it later renamed —
// is read as version 2 Items with defaults: directly, through aggregate
// snapshots taken over the old events, and through a persistent
// projection.
func TestSchemaEvolution(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	log, err := evlog.Open(dir, evlog.Options{Clock: func() time.Time { now = now.Add(time.Minute); return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	// Version 1 wrote "item_picked" (renamed "item_added" in version 2)
	// and "item_removed", both with the bare name.
	for i, name := range []string{"sword", "potion", "sword", "potion"} {
		typ := "item_picked"
		if i == 3 {
			typ = inventory.ItemRemoved
		}
		env, err := evlog.Encode(evlog.Event[string]{Type: typ, SchemaVersion: 1, Data: name})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := log.Append(ctx, inventory.Stream("bob"), evlog.ExpectAny, env); err != nil {
			t.Fatal(err)
		}
	}
	reg := inventory.Registry()
	// The rename: item_picked v1 is item_added v1, which the inventory's
	// own upcaster then turns into an Added.
	if err := reg.Upcast(evlog.Upcast{Type: "item_picked", From: 1, To: inventory.ItemAdded}); err != nil {
		t.Fatal(err)
	}
	codec := evlog.CodecFor[inventory.Change](reg)

	// Directly.
	var got []inventory.Event
	for env, err := range log.Events(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		e, err := codec.Decode(env)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	want := []inventory.Item{{"sword", "common", "unknown"}, {"potion", "common", "unknown"}, {"sword", "common", "unknown"}, {"potion", "common", "unknown"}}
	for i, e := range got {
		_, added := e.Data.(inventory.Added)
		if e.Data.Item() != want[i] || e.SchemaVersion != inventory.PayloadVersion || (i < 3) != (e.Type == inventory.ItemAdded) || (i < 3) != added {
			t.Fatalf("event %d read as %s v%d %+v", i+1, e.Type, e.SchemaVersion, e.Data)
		}
	}

	// Through the aggregate and its snapshot of the old events.
	snaps, _ := log.Snapshots()
	repo := aggregate.NewRepository(log, snaps, inventory.Definition, aggregate.Codec[inventory.Event](codec), aggregate.Options{})
	if err := repo.Snapshot(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	repo.Close()
	// A new version appends an Item; a fresh repository loads from the
	// snapshot and the new event.
	repo = aggregate.NewRepository(log, snaps, inventory.Definition, aggregate.Codec[inventory.Event](codec), aggregate.Options{})
	defer repo.Close()
	if _, err := repo.Execute(ctx, "bob", inventory.Add(inventory.Item{Name: "shield", Rarity: "rare", Origin: "castle"})); err != nil {
		t.Fatal(err)
	}
	// The command set no SchemaVersion: the registry stamped the current one.
	for e, err := range log.StreamBackward(ctx, inventory.Stream("bob"), 0) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Type != inventory.ItemAdded || e.SchemaVersion != inventory.PayloadVersion {
			t.Fatalf("the new event was stored as %s v%d, want %s v%d", e.Type, e.SchemaVersion, inventory.ItemAdded, inventory.PayloadVersion)
		}
		break
	}
	res, err := replay.State(ctx, log, snaps, repo.Subject("bob"), replay.Latest(),
		replay.Spec[inventory.State, inventory.Event]{Init: inventory.Definition.New, Decode: codec.Decode, Fold: inventory.Definition.Apply}, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.Snapshot == nil || res.Applied != 1 {
		t.Fatalf("the state was not computed from the snapshot of the old events: %+v", res.Plan)
	}
	if d := cmp.Diff([]inventory.Stack{{"shield", 1}, {"sword", 2}}, res.State.Items()); d != "" {
		t.Fatalf("state (-want +got):\n%s", d)
	}

	// Through a persistent projection.
	r := projection.NewRunner(inventory.Origins, log, snaps, codec.Decode, projection.RunnerOptions{})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	if err := r.WaitFor(ctx, log.LastSeq()); err != nil {
		t.Fatal(err)
	}
	r.Read(func(m map[string]map[string]bool, _ uint64) {
		if d := cmp.Diff(map[string]map[string]bool{"sword": {"unknown": true}, "potion": {"unknown": true}, "shield": {"castle": true}}, m); d != "" {
			t.Errorf("origins (-want +got):\n%s", d)
		}
	})
	cancel()
	<-done
}
