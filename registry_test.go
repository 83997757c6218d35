package evlog

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// The registry tests' event types: three payload Go types behind one
// interface, item_added at schema version 2 (version 1 was a bare name).
type (
	regEvent interface{ item() string }
	regAdded struct {
		Name   string
		Rarity string
	}
	regRemoved struct{ Name string }
	regRenamed struct{ From, To string }
)

func (e regAdded) item() string   { return e.Name }
func (e regRemoved) item() string { return e.Name }
func (e regRenamed) item() string { return e.To }

func (regAdded) SchemaVersion() uint32 { return 2 }

// addedV1toV2 turns a version 1 item_added payload (the bare name) into a
// regAdded.
func addedV1toV2(old any) (any, error) {
	name, ok := old.(string)
	if !ok {
		return nil, fmt.Errorf("version 1 payload is %T, want the name", old)
	}
	return regAdded{Name: name, Rarity: "common"}, nil
}

func testRegistry(t testing.TB, opts ...RegistryOption) *Registry {
	t.Helper()
	r := NewRegistry(opts...)
	MustRegister[regAdded](r, "item_added", 0, Upcast{Type: "item_added", From: 1, Fn: addedV1toV2})
	MustRegister[regRemoved](r, "item_removed", 1)
	MustRegister[regRenamed](r, "item_renamed", 0)
	// item_picked was the first name of item_added.
	if err := r.Upcast(Upcast{Type: "item_picked", From: 1, To: "item_added"}); err != nil {
		t.Fatal(err)
	}
	return r
}

// rawEvent encodes a payload as a raw envelope of type typ at version v,
// as an older program (or another one) would have written it.
func rawEvent(t testing.TB, typ string, v uint32, data any) Envelope {
	t.Helper()
	env, err := Encode(Event[any]{Type: typ, SchemaVersion: v, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// TestRegistryAppendAndRead: appending through the registry view stamps
// each event's type and version from its Go type, refuses unregistered
// payloads and outdated versions (writing nothing), and reads each event
// back as its own Go type after upcasting; an unknown stored type is an
// error, or an Unknown with KeepUnknown.
func TestRegistryAppendAndRead(t *testing.T) {
	type stored struct {
		Type string
		V    uint32
	}
	for _, tc := range []struct {
		name    string
		opts    []RegistryOption
		raw     []Envelope        // appended raw first
		events  []Event[regEvent] // then through the view
		wantErr error             // of the typed append
		stored  []stored
		read    []regEvent // what the view reads back
		readErr error
	}{
		{name: "registered types stamped",
			events: []Event[regEvent]{{Data: regAdded{"sword", "rare"}}, {Data: regRemoved{"sword"}}, {Data: regRenamed{"a", "b"}}},
			stored: []stored{{"item_added", 2}, {"item_removed", 1}, {"item_renamed", 1}},
			read:   []regEvent{regAdded{"sword", "rare"}, regRemoved{"sword"}, regRenamed{"a", "b"}}},
		{name: "explicit current type and version",
			events: []Event[regEvent]{{Type: "item_added", SchemaVersion: 2, Data: regAdded{"sword", "rare"}}},
			stored: []stored{{"item_added", 2}},
			read:   []regEvent{regAdded{"sword", "rare"}}},
		{name: "too old version refused at append",
			events:  []Event[regEvent]{{Data: regRemoved{"x"}}, {SchemaVersion: 1, Data: regAdded{"sword", "rare"}}},
			wantErr: ErrSchemaVersion},
		{name: "type not matching the payload refused",
			events:  []Event[regEvent]{{Type: "item_removed", Data: regAdded{"sword", "rare"}}},
			wantErr: ErrInvalid},
		{name: "unregistered type name refused",
			events:  []Event[regEvent]{{Type: "item_sold", Data: regAdded{"sword", "rare"}}},
			wantErr: ErrUnknownType},
		{name: "unregistered payload type refused",
			events:  []Event[regEvent]{{Data: unregistered{"x"}}},
			wantErr: ErrUnknownType},
		{name: "nil payload refused",
			events:  []Event[regEvent]{{Type: "item_added"}},
			wantErr: ErrInvalid},
		{name: "upcast on read: version 1 and a renamed type",
			raw:    []Envelope{rawEvent(t, "item_added", 1, "potion"), rawEvent(t, "item_picked", 1, "bow")},
			events: []Event[regEvent]{{Data: regAdded{"sword", "rare"}}},
			stored: []stored{{"item_added", 1}, {"item_picked", 1}, {"item_added", 2}},
			read:   []regEvent{regAdded{"potion", "common"}, regAdded{"bow", "common"}, regAdded{"sword", "rare"}}},
		{name: "unknown stored type is an error",
			raw:     []Envelope{rawEvent(t, "item_sold", 1, "gold")},
			stored:  []stored{{"item_sold", 1}},
			readErr: ErrUnknownType},
		{name: "newer stored version is an error",
			raw:     []Envelope{rawEvent(t, "item_removed", 2, map[string]any{"Name": "x"})},
			stored:  []stored{{"item_removed", 2}},
			readErr: errAny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			l := openMem(t, vfs.NewMem(), Options{Clock: fakeClock(t0, time.Second)})
			defer l.Close()
			for _, env := range tc.raw {
				if _, err := l.Append(ctx, "inventory-a", ExpectAny, env); err != nil {
					t.Fatal(err)
				}
			}
			tl := Typed[regEvent](l, WithRegistry(testRegistry(t, tc.opts...)))
			if len(tc.events) > 0 {
				_, err := tl.Append(ctx, "inventory-a", ExpectAny, tc.events...)
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) || !errors.Is(err, ErrInvalid) {
						t.Fatalf("append: %v, want %v (and ErrInvalid)", err, tc.wantErr)
					}
					if l.LastSeq() != uint64(len(tc.raw)) {
						t.Fatal("a refused append wrote events")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			var got []stored
			for _, e := range readAll(t, l) {
				got = append(got, stored{e.Type, e.SchemaVersion})
			}
			if d := cmp.Diff(tc.stored, got); d != "" {
				t.Fatalf("stored (-want +got):\n%s", d)
			}
			var read []regEvent
			var err error
			for e, rerr := range tl.Stream(ctx, "inventory-a", 1) {
				if rerr != nil {
					err = rerr
					break
				}
				read = append(read, e.Data)
			}
			if tc.readErr != nil {
				if _, ok := errors.AsType[*DecodeError](err); !ok || (tc.readErr != errAny && !errors.Is(err, tc.readErr)) {
					t.Fatalf("read: %v, want a *DecodeError matching %v", err, tc.readErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.read, read); d != "" {
				t.Fatalf("read (-want +got):\n%s", d)
			}
		})
	}
}

// errAny in a want column: any error of the right kind.
var errAny = errors.New("any")

type unregistered struct{ X string }

func (unregistered) item() string { return "" }

// TestRegistryUnknownAsRaw: with KeepUnknown an unregistered stored type
// reads as an Unknown holding the (upcast) envelope, if the view's type
// can hold one; a view of a sealed interface still fails.
func TestRegistryUnknownAsRaw(t *testing.T) {
	ctx := t.Context()
	l := openMem(t, vfs.NewMem(), Options{Clock: fakeClock(t0, time.Second)})
	defer l.Close()
	sold := rawEvent(t, "item_sold", 1, "gold")
	if _, err := l.Append(ctx, "inventory-a", ExpectAny, sold); err != nil {
		t.Fatal(err)
	}
	reg := testRegistry(t, KeepUnknown())
	if _, err := Typed[any](l, WithRegistry(reg)).Append(ctx, "inventory-a", ExpectAny, Event[any]{Data: regRemoved{"x"}}); err != nil {
		t.Fatal(err)
	}
	var got []any
	for e, err := range Typed[any](l, WithRegistry(reg)).Events(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Data)
	}
	u, ok := got[0].(Unknown)
	if len(got) != 2 || !ok || u.Type != "item_sold" || u.Seq != 1 || string(u.Data) != string(sold.Data) || got[1] != (regRemoved{"x"}) {
		t.Fatalf("read %#v, want the raw item_sold then a regRemoved", got)
	}
	for _, err := range Typed[regEvent](l, WithRegistry(reg)).Events(ctx, 1) {
		if _, ok := errors.AsType[*DecodeError](err); !ok || !errors.Is(err, ErrUnknownType) {
			t.Fatalf("sealed view read %v, want a *DecodeError matching ErrUnknownType", err)
		}
		break
	}
	// Without KeepUnknown: the error, through a Codec too.
	_, err := CodecFor[any](testRegistry(t)).Decode(readAll(t, l)[0])
	if ute, ok := errors.AsType[*UnknownTypeError](err); !ok || ute.Type != "item_sold" {
		t.Fatalf("decode: %v, want an *UnknownTypeError naming item_sold", err)
	}
}

// TestRegistryRegister: registrations that would make writes and reads
// disagree fail, registering nothing.
func TestRegistryRegister(t *testing.T) {
	r := testRegistry(t)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"duplicate name", Register[regRemoved](r, "item_removed", 1)},
		{"interface payload", Register[regEvent](r, "item_x", 1)},
		{"invalid name", Register[regRemoved](r, "bad\nname", 1)},
		{"empty name", Register[regRemoved](r, "", 1)},
		{"version other than declared", Register[regAdded](r, "item_y", 3)},
		{"version below its upcasts", Register[regRemoved](r, "item_z", 1, Upcast{Type: "item_z", From: 1, Fn: addedV1toV2})},
		{"upcast past a registered version", r.Upcast(Upcast{Type: "item_removed", From: 1, Fn: addedV1toV2})},
		{"duplicate upcast", r.Upcast(Upcast{Type: "item_added", From: 1, Fn: addedV1toV2})},
	} {
		if tc.err == nil {
			t.Errorf("%s: registered", tc.name)
		}
	}
	want := []RegisteredType{{"item_added", 2, reflect.TypeFor[regAdded]()}, {"item_removed", 1, reflect.TypeFor[regRemoved]()}, {"item_renamed", 1, reflect.TypeFor[regRenamed]()}}
	if d := cmp.Diff(want, r.Types(), cmp.Comparer(func(a, b RegisteredType) bool { return a == b })); d != "" {
		t.Fatalf("types (-want +got):\n%s", d)
	}
	if r.Upcasters().Latest("item_removed") != 0 || r.Upcasters().Latest("item_z") != 0 {
		t.Fatal("a failed registration left upcasts behind")
	}
	// One Go type under two names: appends must name the type.
	r2 := NewRegistry()
	MustRegister[regRemoved](r2, "a", 1)
	MustRegister[regRemoved](r2, "b", 1)
	l := openMem(t, vfs.NewMem(), Options{})
	defer l.Close()
	tl := Typed[any](l, WithRegistry(r2))
	if _, err := tl.Append(t.Context(), "s", ExpectAny, Event[any]{Data: regRemoved{"x"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ambiguous payload: %v, want ErrInvalid", err)
	}
	if _, err := tl.Append(t.Context(), "s", ExpectAny, Event[any]{Type: "b", Data: regRemoved{"x"}}); err != nil {
		t.Fatal(err)
	}
}

// TestRegistryCodecRoundTrip: CodecFor encodes each event as the view
// appends it (type and version stamped, the same bytes) and decodes it
// back to its own Go type.
func TestRegistryCodecRoundTrip(t *testing.T) {
	ctx := t.Context()
	reg := testRegistry(t)
	codec := CodecFor[regEvent](reg)
	l := openMem(t, vfs.NewMem(), Options{Clock: fakeClock(t0, time.Second)})
	defer l.Close()
	in := []regEvent{regAdded{"sword", "rare"}, regRemoved{"sword"}, regRenamed{"a", "b"}}
	for _, d := range in {
		env, err := codec.Encode(Event[regEvent]{Data: d})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(ctx, "raw", ExpectAny, env); err != nil {
			t.Fatal(err)
		}
		if _, err := Typed[regEvent](l, WithRegistry(reg)).Append(ctx, "typed", ExpectAny, Event[regEvent]{Data: d}); err != nil {
			t.Fatal(err)
		}
	}
	var raw, typed []Envelope
	for _, e := range readAll(t, l) {
		if e.Stream == "raw" {
			raw = append(raw, e)
		} else {
			typed = append(typed, e)
		}
	}
	for i := range raw {
		if raw[i].Type != typed[i].Type || raw[i].SchemaVersion != typed[i].SchemaVersion || string(raw[i].Data) != string(typed[i].Data) {
			t.Fatalf("event %d: Codec wrote %s v%d %x, the view %s v%d %x", i, raw[i].Type, raw[i].SchemaVersion, raw[i].Data, typed[i].Type, typed[i].SchemaVersion, typed[i].Data)
		}
		e, err := codec.Decode(raw[i])
		if err != nil {
			t.Fatal(err)
		}
		if e.Data != in[i] {
			t.Fatalf("event %d decoded as %#v, want %#v", i, e.Data, in[i])
		}
	}
	if _, err := codec.Encode(Event[regEvent]{SchemaVersion: 1, Data: regAdded{"x", "y"}}); !errors.Is(err, ErrSchemaVersion) {
		t.Fatalf("Encode at version 1: %v, want ErrSchemaVersion", err)
	}
}

// TestTypedSubscribeGapFree: a registry view's Subscribe yields every
// event, history then live, in seq order with no gap or duplicate, each
// decoded to its own Go type, while a writer appends concurrently.
func TestTypedSubscribeGapFree(t *testing.T) {
	ctx := t.Context()
	l := openMem(t, vfs.NewMem(), Options{})
	defer l.Close()
	tl := Typed[regEvent](l, WithRegistry(testRegistry(t)))
	const batches, per = 40, 5
	mk := func(i int) regEvent {
		switch i % 3 {
		case 0:
			return regAdded{Name: fmt.Sprint(i), Rarity: "r"}
		case 1:
			return regRemoved{Name: fmt.Sprint(i)}
		}
		return regRenamed{From: "x", To: fmt.Sprint(i)}
	}
	appendBatch := func(b int) error {
		evs := make([]Event[regEvent], per)
		for j := range evs {
			evs[j] = Event[regEvent]{Data: mk(b*per + j)}
		}
		_, err := tl.Append(ctx, fmt.Sprintf("inventory-%d", b%3), ExpectAny, evs...)
		return err
	}
	// Half the history before subscribing, the rest live; the writer
	// starts once the subscriber has read the first event (a barrier, no
	// sleep), so both phases are exercised.
	for b := range batches / 2 {
		if err := appendBatch(b); err != nil {
			t.Fatal(err)
		}
	}
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		<-started
		for b := batches / 2; b < batches; b++ {
			if err := appendBatch(b); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	next := uint64(1)
	for e, err := range tl.Subscribe(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		if next == 1 {
			close(started)
		}
		if e.Seq != next {
			t.Fatalf("got seq %d, want %d (gap or duplicate)", e.Seq, next)
		}
		if want := mk(int(next - 1)); e.Data != want {
			t.Fatalf("seq %d decoded as %#v, want %#v", next, e.Data, want)
		}
		if next++; next > batches*per {
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
