package evlog

import (
	"fmt"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// TestTypedSubscribeSkipsSystemStreams: a typed subscription, plain or
// through a registry, skips the deletion markers of DeletionsStream (their
// payloads are not the view's type), as the typed Events and Range do,
// instead of failing on them or yielding them decoded as a payload.
func TestTypedSubscribeSkipsSystemStreams(t *testing.T) {
	type item struct{ Name string }
	ctx := t.Context()
	l := openMem(t, vfs.NewMem(), Options{})
	defer l.Close()
	plain := Typed[item](l)
	if _, err := plain.Append(ctx, "inventory-1", ExpectAny, Event[item]{Type: "added", Data: item{"a"}}, Event[item]{Type: "added", Data: item{"b"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Append(ctx, "inventory-2", ExpectAny, Event[item]{Type: "added", Data: item{"c"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.DeleteStream(ctx, "inventory-1"); err != nil {
		t.Fatal(err)
	}
	pos, err := plain.Append(ctx, "inventory-2", ExpectAny, Event[item]{Type: "added", Data: item{"d"}})
	if err != nil {
		t.Fatal(err)
	}
	last := pos.Seq

	got := func(name string, sub func(yield func(string, error) bool)) {
		t.Helper()
		var names []string
		for n, err := range sub {
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			names = append(names, n)
		}
		if fmt.Sprint(names) != "[inventory-2:c inventory-2:d]" {
			t.Errorf("%s yielded %v, want [inventory-2:c inventory-2:d]", name, names)
		}
	}
	got("Typed[item].Subscribe", func(yield func(string, error) bool) {
		sctx, cancel := guarded(ctx)
		defer cancel()
		for ev, err := range plain.Subscribe(sctx, 1) {
			if err != nil {
				yield("", hungErr(sctx, err))
				return
			}
			if !yield(ev.Stream+":"+ev.Data.Name, nil) || ev.Seq >= last {
				return
			}
		}
	})
	reg := NewRegistry()
	if err := Register[item](reg, "added", 1); err != nil {
		t.Fatal(err)
	}
	regView := Typed[any](l, WithRegistry(reg))
	got("registry view Subscribe", func(yield func(string, error) bool) {
		sctx, cancel := guarded(ctx)
		defer cancel()
		for ev, err := range regView.Subscribe(sctx, 1) {
			if err != nil {
				yield("", hungErr(sctx, err))
				return
			}
			if !yield(ev.Stream+":"+ev.Data.(item).Name, nil) || ev.Seq >= last {
				return
			}
		}
	})
}
