package inventory_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/examples/inventory"
	"github.com/evlog/evlog/snapshot"
)

// The reference example: an inventory whose early events stored bare item
// names (schema version 1) and later ones Items (version 2); commands,
// reads from the cached state, "what was the inventory at 3pm?", the two
// projections, the audit trail of one item, and undo (see Tour, which
// github.com/evlog/evlog/jetstream runs on JetStream with the same output).
func Example() {
	dir, err := os.MkdirTemp("", "inventory-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	// A clock that advances one hour per batch, from 10:00.
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { now = now.Add(time.Hour); return now }
	log, err := evlog.Open(dir, evlog.Options{Clock: clock})
	if err != nil {
		panic(err)
	}
	defer log.Close()
	if err := inventory.Tour(context.Background(), os.Stdout, log, mustSnapshots(log)); err != nil {
		panic(err)
	}

	// Output:
	// remove a bow: true
	// undo appended: item_added sword
	// now: [{potion 1} {shield 1} {sword 3}]
	// swords: 3
	// at 15:00: [{potion 1} {shield 1} {sword 2}]
	//   10:00 item_added potion (common, from unknown)
	//   13:00 item_added potion (common, from shop)
	//   15:00 item_removed potion (, from )
	// most collected: [{sword 3} {potion 2}]
	// sword origins: [castle dungeon]
}

func mustSnapshots(log *evlog.Log) *snapshot.Store {
	s, err := log.Snapshots()
	if err != nil {
		panic(err)
	}
	return s
}

// Every inventory is the stream "inventory-<id>": a wallet "alice" (another
// aggregate type, stream "wallet-alice") never mixes with the inventory
// "alice", and Log.Category reads all inventories' events, in seq order,
// through the streams' indexes.
func Example_category() {
	dir, err := os.MkdirTemp("", "inventory-category-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	log, err := evlog.Open(dir, evlog.Options{})
	if err != nil {
		panic(err)
	}
	defer log.Close()
	alice, err := inventory.Open(log, "alice", aggregate.Options{})
	if err != nil {
		panic(err)
	}
	defer alice.Close()
	bob, err := inventory.Open(log, "bob", aggregate.Options{})
	if err != nil {
		panic(err)
	}
	defer bob.Close()
	must(alice.AddItem(ctx, inventory.Item{Name: "sword", Rarity: "rare", Origin: "castle"}))
	if _, err := log.Append(ctx, "wallet-alice", evlog.ExpectAny, evlog.Envelope{Type: "credited"}); err != nil {
		panic(err)
	}
	must(bob.AddItem(ctx, inventory.Item{Name: "potion", Rarity: "common", Origin: "shop"}))
	must(alice.RemoveItem(ctx, "sword"))

	// One typed view over the registry reads both event types, each as
	// its own Go type.
	events := evlog.Typed[inventory.Change](log, evlog.WithRegistry(inventory.Registry()))
	for e, err := range events.Category(ctx, inventory.Category, 1) {
		if err != nil {
			panic(err)
		}
		fmt.Printf("%d %s %d %s %T %s\n", e.Seq, e.Stream, e.Version, e.Type, e.Data, e.Data.Item().Name)
	}
	// Output:
	// 1 inventory-alice 1 item_added inventory.Added sword
	// 3 inventory-bob 1 item_added inventory.Added potion
	// 4 inventory-alice 2 item_removed inventory.Removed sword
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
