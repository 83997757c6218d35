package aggregate_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/event"
)

// kinds counts the events an aggregate folded, by type.
type kinds map[string]int

func kindsDef(category string) aggregate.Definition[kinds, event.Envelope] {
	return aggregate.Definition[kinds, event.Envelope]{
		Name:     category,
		Category: category,
		Init:     func() kinds { return kinds{} },
		Apply:    func(k kinds, e event.Envelope) kinds { k[e.Type]++; return k },
		Clone: func(k kinds) kinds {
			c := kinds{}
			for t, n := range k {
				c[t] = n
			}
			return c
		},
	}
}

func emit(typ string) aggregate.Command[kinds, event.Envelope] {
	return func(kinds) ([]event.Envelope, error) { return []event.Envelope{{Type: typ}}, nil }
}

// Two aggregate types with the same id used to share the bare id as their
// stream, and so folded each other's events (and conflicted on versions).
// With categories an "inventory" alice and a "wallet" alice are the
// streams inventory-alice and wallet-alice.
func TestAggregateTypesWithTheSameIDAreSeparate(t *testing.T) {
	ctx := t.Context()
	l, err := evlog.Open(t.TempDir(), evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	inv := aggregate.NewRepository(l, nil, kindsDef("inventory"), aggregate.Codec[event.Envelope](aggregate.RawCodec{}), aggregate.Options{})
	wal := aggregate.NewRepository(l, nil, kindsDef("wallet"), aggregate.Codec[event.Envelope](aggregate.RawCodec{}), aggregate.Options{CacheSize: -1})
	defer inv.Close()
	defer wal.Close()
	for _, typ := range []string{"item_added", "item_added", "item_removed"} {
		if _, err := inv.Execute(ctx, "alice", emit(typ)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := wal.Execute(ctx, "alice", emit("credited"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(kinds{"credited": 1}, res.State); d != "" || res.Version != 1 {
		t.Errorf("wallet alice after its first event: version %d, state (-want +got):\n%s", res.Version, d)
	}
	got, err := inv.Load(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(kinds{"item_added": 2, "item_removed": 1}, got.State); d != "" || got.Version != 3 {
		t.Errorf("inventory alice: version %d, state (-want +got):\n%s", got.Version, d)
	}
	for stream, want := range map[string]int{"inventory-alice": 3, "wallet-alice": 1, "alice": 0} {
		if v, err := l.StreamVersion(ctx, stream); err != nil || v != uint64(want) {
			t.Errorf("stream %q at version %d (%v), want %d", stream, v, err, want)
		}
	}
	if s := inv.Stream("alice"); s != "inventory-alice" {
		t.Errorf("Stream(alice) = %q", s)
	}
	n := 0
	for e, err := range l.Category(ctx, "inventory", 1) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Stream != "inventory-alice" {
			t.Errorf("Category(inventory) yielded an event of %q", e.Stream)
		}
		n++
	}
	if n != 3 {
		t.Errorf("Category(inventory) yielded %d events, want 3", n)
	}
}

// The category is required and validated; ids may hold the separator.
func TestDefinitionCategory(t *testing.T) {
	ctx := t.Context()
	l, err := evlog.Open(t.TempDir(), evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, category := range []string{"", "in-ventory", "tab\t", "\xff"} {
		def := kindsDef(category)
		if err := def.Validate(); !errors.Is(err, event.ErrInvalid) {
			t.Errorf("Validate with category %q: %v, want ErrInvalid", category, err)
		}
		r := aggregate.NewRepository(l, nil, def, aggregate.Codec[event.Envelope](aggregate.RawCodec{}), aggregate.Options{})
		if _, err := r.Execute(ctx, "alice", emit("t")); !errors.Is(err, event.ErrInvalid) {
			t.Errorf("Execute with category %q: %v, want ErrInvalid", category, err)
		}
		if _, err := r.Load(ctx, "alice"); !errors.Is(err, event.ErrInvalid) {
			t.Errorf("Load with category %q: %v, want ErrInvalid", category, err)
		}
		r.Close()
	}
	if l.LastSeq() != 0 {
		t.Fatalf("invalid definitions appended %d events", l.LastSeq())
	}
	r := aggregate.NewRepository(l, nil, kindsDef("order"), aggregate.Codec[event.Envelope](aggregate.RawCodec{}), aggregate.Options{})
	defer r.Close()
	for _, id := range []string{"", "a\nb"} {
		if _, err := r.Execute(ctx, id, emit("t")); !errors.Is(err, event.ErrInvalid) {
			t.Errorf("Execute(%q): %v, want ErrInvalid", id, err)
		}
	}
	// An id holding the separator: its stream is still in the category.
	if _, err := r.Execute(ctx, "2026-11-25", emit("placed")); err != nil {
		t.Fatal(err)
	}
	if v, err := l.StreamVersion(ctx, "order-2026-11-25"); err != nil || v != 1 {
		t.Fatalf("order-2026-11-25 at version %d, %v", v, err)
	}
}
