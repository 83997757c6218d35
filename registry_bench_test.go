package evlog

import (
	"context"
	"testing"
)

// BenchmarkRegistryAppend: a batch of 1,000 events appended through a
// registry view (each payload an any, its entry looked up by Go type, its
// type and version stamped) against the same batch through Typed[T]; the
// same bytes are written. SyncNever, so the codec's cost shows. Run:
//
//	go test -run '^$' -bench RegistryAppend -benchtime 300x -count 3 .
func BenchmarkRegistryAppend(b *testing.B) {
	items := benchItems(appendBatchEvents, 0)
	for _, impl := range []string{"typed", "registry"} {
		b.Run("impl="+impl, func(b *testing.B) {
			l, err := Open(b.TempDir(), Options{Sync: SyncNever})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ctx := context.Background()
			names := streamNames(100)
			var appendOne func(stream string) error
			switch impl {
			case "typed":
				tl := Typed[benchItem](l)
				evs := make([]Event[benchItem], len(items))
				for i := range evs {
					evs[i] = Event[benchItem]{Type: "item_added", Data: items[i]}
				}
				appendOne = func(s string) error { _, err := tl.Append(ctx, s, ExpectAny, evs...); return err }
			case "registry":
				reg := NewRegistry()
				MustRegister[benchItem](reg, "item_added", 0)
				tl := Typed[any](l, WithRegistry(reg))
				evs := make([]Event[any], len(items))
				for i := range evs {
					evs[i] = Event[any]{Data: items[i]}
				}
				appendOne = func(s string) error { _, err := tl.Append(ctx, s, ExpectAny, evs...); return err }
			}
			b.ReportAllocs()
			i := 0
			cpu0 := processCPU()
			for b.Loop() {
				if err := appendOne(names[i%len(names)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			reportEvents(b, b.N*appendBatchEvents, cpu0)
		})
	}
}

// BenchmarkRegistryRequest: the codec alone, without the log's I/O:
// encoding a batch of 1,000 events into an AppendRequest through Typed[T]
// and through a registry view.
func BenchmarkRegistryRequest(b *testing.B) {
	items := benchItems(appendBatchEvents, 0)
	l, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.Run("impl=typed", func(b *testing.B) {
		tl := Typed[benchItem](l)
		evs := make([]Event[benchItem], len(items))
		for i := range evs {
			evs[i] = Event[benchItem]{Type: "item_added", Data: items[i]}
		}
		b.ReportAllocs()
		cpu0 := processCPU()
		for b.Loop() {
			if _, err := tl.Request("s", ExpectAny, evs...); err != nil {
				b.Fatal(err)
			}
		}
		reportEvents(b, b.N*len(evs), cpu0)
	})
	b.Run("impl=registry", func(b *testing.B) {
		reg := NewRegistry()
		MustRegister[benchItem](reg, "item_added", 0)
		tl := Typed[any](l, WithRegistry(reg))
		evs := make([]Event[any], len(items))
		for i := range evs {
			evs[i] = Event[any]{Data: items[i]}
		}
		b.ReportAllocs()
		cpu0 := processCPU()
		for b.Loop() {
			if _, err := tl.Request("s", ExpectAny, evs...); err != nil {
				b.Fatal(err)
			}
		}
		reportEvents(b, b.N*len(evs), cpu0)
	})
}

// TestRegistrySameBytesAsTyped: the registry view writes the very payload
// bytes Typed[T] writes for the same value.
func TestRegistrySameBytesAsTyped(t *testing.T) {
	l, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reg := NewRegistry()
	MustRegister[benchItem](reg, "item_added", 0)
	MustRegister[customItem](reg, "custom", 0)
	it := newBenchItem(7)
	if _, err := Typed[benchItem](l).Append(t.Context(), "s", ExpectAny, Event[benchItem]{Type: "item_added", Data: it}); err != nil {
		t.Fatal(err)
	}
	if _, err := Typed[any](l, WithRegistry(reg)).Append(t.Context(), "s", ExpectAny, Event[any]{Data: it}, Event[any]{Data: customItem(it)}); err != nil {
		t.Fatal(err)
	}
	evs := readAll(t, l)
	for i := 1; i < 3; i++ {
		if string(evs[i].Data) != string(evs[0].Data) {
			t.Fatalf("event %d: registry wrote %x, Typed %x", i, evs[i].Data, evs[0].Data)
		}
	}
}
