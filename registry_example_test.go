package evlog_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/evlog/evlog"
)

type ItemAdded struct{ Name, Rarity, Origin string }
type ItemRemoved struct{ Name string }

// One registry of event types: each event is appended and read as its own
// Go type, its type name and schema version stamped; a version 1 payload
// (a bare name, written before the registry) is upcast as it is read.
func ExampleRegistry() {
	dir, err := os.MkdirTemp("", "registry-example-")
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

	reg := evlog.NewRegistry()
	evlog.MustRegister[ItemAdded](reg, "item_added", 2, // v1 stored a bare name
		evlog.Upcast{Type: "item_added", From: 1, Fn: func(old any) (any, error) {
			return ItemAdded{Name: old.(string), Rarity: "common"}, nil
		}})
	evlog.MustRegister[ItemRemoved](reg, "item_removed", 1)

	old, _ := evlog.Encode(evlog.Event[string]{Type: "item_added", SchemaVersion: 1, Data: "potion"})
	if _, err := log.Append(ctx, "cart-42", evlog.ExpectNoStream, old); err != nil {
		panic(err)
	}
	items := evlog.Typed[any](log, evlog.WithRegistry(reg))
	if _, err := items.Append(ctx, "cart-42", evlog.ExpectVersion(1),
		evlog.Event[any]{Data: ItemAdded{Name: "sword", Rarity: "rare"}},
		evlog.Event[any]{Data: ItemRemoved{Name: "potion"}}); err != nil {
		panic(err)
	}
	_, err = items.Append(ctx, "cart-42", evlog.ExpectAny, evlog.Event[any]{SchemaVersion: 1, Data: ItemAdded{Name: "bow"}})
	fmt.Println("append at v1 refused:", errors.Is(err, evlog.ErrSchemaVersion))

	for ev, err := range items.Stream(ctx, "cart-42", 1) {
		if err != nil {
			panic(err)
		}
		switch d := ev.Data.(type) {
		case ItemAdded:
			fmt.Printf("%d %s v%d: added %s (%s)\n", ev.Version, ev.Type, ev.SchemaVersion, d.Name, d.Rarity)
		case ItemRemoved:
			fmt.Printf("%d %s v%d: removed %s\n", ev.Version, ev.Type, ev.SchemaVersion, d.Name)
		}
	}
	// Output:
	// append at v1 refused: true
	// 1 item_added v2: added potion (common)
	// 2 item_added v2: added sword (rare)
	// 3 item_removed v1: removed potion
}
