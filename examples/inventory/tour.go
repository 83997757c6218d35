package inventory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/projection"
)

// Tour runs the reference scenario on an empty log and prints what it
// sees to out: an inventory whose first event stored a bare item name
// (schema version 1) and later ones Items (version 2); commands, reads
// from the cached state, "what was the inventory at 15:00?", the two
// projections, the audit trail of one item, and undo.
//
// The log must stamp events from a clock that advances one hour per
// append, from 10:00 on 2026-11-25 UTC (see Example). Tour needs only the
// consumer-side interfaces, so it runs unchanged on any backend: the file
// log (Example) and the JetStream log (github.com/evlog/evlog/jetstream)
// print the same.
func Tour(ctx context.Context, out io.Writer, log aggregate.Log, snaps aggregate.Snapshots) error {
	// 10:00 — written by the first version of the game: a bare name.
	old, err := evlog.Encode(evlog.Event[string]{Type: ItemAdded, SchemaVersion: 1, Data: "potion"})
	if err != nil {
		return err
	}
	if _, err := log.Append(ctx, Stream("alice"), evlog.ExpectNoStream, old); err != nil {
		return err
	}

	inv := OpenOn(log, snaps, "alice", aggregate.Options{SnapshotEvery: 3})
	defer inv.Close()
	for _, step := range []func() error{
		func() error { return inv.AddItem(ctx, Item{Name: "sword", Rarity: "rare", Origin: "castle"}) },      // 11:00
		func() error { return inv.AddItem(ctx, Item{Name: "sword", Rarity: "epic", Origin: "dungeon"}) },     // 12:00
		func() error { return inv.AddItem(ctx, Item{Name: "potion", Rarity: "common", Origin: "shop"}) },     // 13:00
		func() error { return inv.AddItem(ctx, Item{Name: "shield", Rarity: "rare", Origin: "castle"}) },     // 14:00
		func() error { return inv.RemoveItem(ctx, "potion") },                                                // 15:00
		func() error { return inv.AddItem(ctx, Item{Name: "sword", Rarity: "legendary", Origin: "castle"}) }, // 16:00
		func() error { return inv.RemoveItem(ctx, "sword") },                                                 // 17:00
	} {
		if err := step(); err != nil {
			return err
		}
	}
	err = inv.RemoveItem(ctx, "bow")
	fmt.Fprintln(out, "remove a bow:", errors.Is(err, ErrNotInInventory))
	undone, err := inv.Undo(ctx) // 18:00: puts the sword back
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "undo appended:", undone.Type, undone.Data.Item().Name)

	items, err := inv.Items(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "now:", items)
	n, err := inv.Count(ctx, "sword")
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "swords:", n)

	at3pm, err := inv.At(ctx, time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC))
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "at 15:00:", at3pm.State.Items())

	trail, err := inv.History(ctx, "potion")
	if err != nil {
		return err
	}
	for _, e := range trail {
		it := e.Data.Item()
		fmt.Fprintf(out, "  %s %s %s (%s, from %s)\n", e.Time.Format("15:04"), e.Type, it.Name, it.Rarity, it.Origin)
	}

	// Both projections in one pass over the log.
	codec := Codec()
	collected, origins := projection.Start(MostCollected), projection.Start(Origins)
	if err := projection.FeedAll(projection.Map(log.Range(ctx, 1, log.LastSeq()), codec.Decode), collected, origins); err != nil {
		return err
	}
	fmt.Fprintln(out, "most collected:", TopN(collected.State(), 2))
	fmt.Fprintln(out, "sword origins:", OriginsOf(origins.State(), "sword"))
	return inv.Close()
}
