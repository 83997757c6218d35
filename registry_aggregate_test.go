package evlog_test

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/projection"
)

// A shop's stock: three event types, each its own Go type applying itself
// to the state, so neither the aggregate nor the decoding has a switch on
// event type names.
type (
	stockEvent interface {
		apply(stock) stock
	}
	stock        map[string]int
	stockAdded   struct{ Item string }
	stockRemoved struct{ Item string }
	stockRenamed struct{ From, To string }
)

func (e stockAdded) apply(s stock) stock   { s[e.Item]++; return s }
func (e stockRemoved) apply(s stock) stock { s[e.Item]--; return s }
func (e stockRenamed) apply(s stock) stock {
	s[e.To] += s[e.From]
	delete(s, e.From)
	return s
}

// item_added moved to version 2 when its field was renamed.
func (stockAdded) SchemaVersion() uint32 { return 2 }

type stockEv = evlog.Event[stockEvent]

var stockDef = aggregate.Definition[stock, stockEv]{
	Category: "stock",
	Init:     func() stock { return stock{} },
	Apply:    func(s stock, e stockEv) stock { return e.Data.apply(s) },
	Clone:    maps.Clone[stock],
}

func stockRegistry() *evlog.Registry {
	reg := evlog.NewRegistry()
	evlog.MustRegister[stockAdded](reg, "item_added", 0, evlog.Upcast{Type: "item_added", From: 1,
		Fn: func(old any) (any, error) { return map[string]any{"Item": old.(map[string]any)["Name"]}, nil }})
	evlog.MustRegister[stockRemoved](reg, "item_removed", 0)
	evlog.MustRegister[stockRenamed](reg, "item_renamed", 0)
	return reg
}

// TestRegistryAggregate: a repository of an aggregate with three event
// types, its codec the registry's: commands return events of each type,
// appended with their registered names and versions, and a fresh
// repository (no cache) folds them back, a version 1 event upcast on the
// way; a projection runner decodes with the same registry.
func TestRegistryAggregate(t *testing.T) {
	ctx := t.Context()
	l, err := evlog.Open(t.TempDir(), evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reg := stockRegistry()
	// Written by the first version: item_added v1 with a "Name".
	old, err := evlog.Encode(evlog.Event[map[string]any]{Type: "item_added", SchemaVersion: 1, Data: map[string]any{"Name": "nail"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, stockDef.Stream("s1"), evlog.ExpectNoStream, old); err != nil {
		t.Fatal(err)
	}
	codec := evlog.CodecFor[stockEvent](reg)
	repo := aggregate.NewRepository(l, nil, stockDef, aggregate.Codec[stockEv](codec), aggregate.Options{})
	do := func(evs ...stockEvent) aggregate.Command[stock, stockEv] {
		return func(stock) ([]stockEv, error) {
			out := make([]stockEv, len(evs))
			for i, d := range evs {
				out[i] = stockEv{Data: d}
			}
			return out, nil
		}
	}
	for _, cmd := range []aggregate.Command[stock, stockEv]{
		do(stockAdded{"screw"}, stockAdded{"screw"}),
		do(stockRemoved{"nail"}, stockRenamed{"screw", "bolt"}),
		do(stockAdded{"nail"}),
	} {
		if _, err := repo.Execute(ctx, "s1", cmd); err != nil {
			t.Fatal(err)
		}
	}
	repo.Close()
	var stored []string
	for e, err := range l.Stream(ctx, stockDef.Stream("s1"), 1) {
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, e.Type+"/"+string(rune('0'+e.SchemaVersion)))
	}
	if d := cmp.Diff([]string{"item_added/1", "item_added/2", "item_added/2", "item_removed/1", "item_renamed/1", "item_added/2"}, stored); d != "" {
		t.Fatalf("stored (-want +got):\n%s", d)
	}
	fresh := aggregate.NewRepository(l, nil, stockDef, aggregate.Codec[stockEv](codec), aggregate.Options{CacheSize: -1})
	defer fresh.Close()
	inst, err := fresh.Load(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(stock{"bolt": 2, "nail": 1}, inst.State); d != "" {
		t.Fatalf("state (-want +got):\n%s", d)
	}

	// A projection over the category, decoded by the registry.
	counts := projection.Projection[map[string]int, stockEv]{Name: "types", SchemaVersion: 1,
		Init:  func() map[string]int { return map[string]int{} },
		Apply: func(m map[string]int, e stockEv) map[string]int { m[e.Type]++; return m }}
	r := projection.NewRunner(counts, l, nil, codec.Decode, projection.RunnerOptions{})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	// A hang guard, no timing assertion: a lost event fails the test
	// instead of hanging it until -timeout.
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	if err := r.WaitFor(wctx, l.LastSeq()); err != nil {
		t.Fatalf("WaitFor(%d), the log's last seq (a hang guard of 2m): %v", l.LastSeq(), err)
	}
	r.Read(func(m map[string]int, _ uint64) {
		if d := cmp.Diff(map[string]int{"item_added": 4, "item_removed": 1, "item_renamed": 1}, m); d != "" {
			t.Errorf("projection (-want +got):\n%s", d)
		}
	})
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
