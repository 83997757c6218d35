package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/examples/inventory"
	"github.com/evlog/evlog/projection"
)

// The reference example: an inventory whose early events stored bare item
// names (schema version 1) and later ones Items (version 2); commands,
// reads from the cached state, "what was the inventory at 3pm?", the two
// projections, the audit trail of one item, and undo.
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
	ctx := context.Background()

	// 10:00 — written by the first version of the game: a bare name.
	old, _ := evlog.Encode(evlog.Event[string]{Type: inventory.ItemAdded, SchemaVersion: 1, Data: "potion"})
	if _, err := log.Append(ctx, "alice", evlog.ExpectNoStream, old); err != nil {
		panic(err)
	}

	inv, err := inventory.Open(log, "alice", aggregate.Options{SnapshotEvery: 3})
	if err != nil {
		panic(err)
	}
	defer inv.Close()
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(inv.AddItem(ctx, inventory.Item{Name: "sword", Rarity: "rare", Origin: "castle"}))      // 11:00
	must(inv.AddItem(ctx, inventory.Item{Name: "sword", Rarity: "epic", Origin: "dungeon"}))     // 12:00
	must(inv.AddItem(ctx, inventory.Item{Name: "potion", Rarity: "common", Origin: "shop"}))     // 13:00
	must(inv.AddItem(ctx, inventory.Item{Name: "shield", Rarity: "rare", Origin: "castle"}))     // 14:00
	must(inv.RemoveItem(ctx, "potion"))                                                          // 15:00
	must(inv.AddItem(ctx, inventory.Item{Name: "sword", Rarity: "legendary", Origin: "castle"})) // 16:00
	must(inv.RemoveItem(ctx, "sword"))                                                           // 17:00
	err = inv.RemoveItem(ctx, "bow")
	fmt.Println("remove a bow:", errors.Is(err, inventory.ErrNotInInventory))
	undone, err := inv.Undo(ctx) // 18:00: puts the sword back
	must(err)
	fmt.Println("undo appended:", undone.Type, undone.Data.Name)

	items, _ := inv.Items(ctx)
	fmt.Println("now:", items)
	n, _ := inv.Count(ctx, "sword")
	fmt.Println("swords:", n)

	at3pm, err := inv.At(ctx, time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC))
	must(err)
	fmt.Println("at 15:00:", at3pm.State.Items())

	trail, _ := inv.History(ctx, "potion")
	for _, e := range trail {
		fmt.Printf("  %s %s %s (%s, from %s)\n", e.Time.Format("15:04"), e.Type, e.Data.Name, e.Data.Rarity, e.Data.Origin)
	}

	// Both projections in one pass over the log.
	codec := evlog.NewCodec[inventory.Item](inventory.Upcasters())
	collected, origins := projection.Start(inventory.MostCollected), projection.Start(inventory.Origins)
	must(projection.FoldAll(projection.Map(log.Events(ctx, 1), codec.Decode), collected, origins))
	fmt.Println("most collected:", inventory.TopN(collected.State(), 2))
	fmt.Println("sword origins:", inventory.OriginsOf(origins.State(), "sword"))

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
