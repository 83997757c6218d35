package evlog

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// plainV is a payload declaring no schema version.
type plainV struct{ Name string }

// itemV3 declares schema version 3 (and stays a flat struct the encoder
// plan handles: SchemaVersion is its only method).
type itemV3 struct{ Name string }

func (itemV3) SchemaVersion() uint32 { return 3 }

// itemV1 declares version 1, below what the upcasters below produce.
type itemV1 struct{ Name string }

func (itemV1) SchemaVersion() uint32 { return 1 }

// toV2 is an upcaster from a bare name to {Name}.
func toV2(old any) (any, error) { return map[string]any{"Name": old}, nil }

// TestTypedStampsSchemaVersion: the trap. After a v1→v2 upcaster
// was added, appending without SchemaVersion stored version 1 and every
// typed read then failed with a DecodeError (the v2 payload went through
// the v1 upcaster). A typed view now stamps the version its upcasters
// produce (or its payload type declares), and refuses older ones at append
// time, writing nothing.
func TestTypedStampsSchemaVersion(t *testing.T) {
	up := func() *Upcasters { return NewUpcasters().MustRegister(Upcast{Type: "added", From: 1, Fn: toV2}) }
	renamed := func() *Upcasters {
		return NewUpcasters().MustRegister(Upcast{Type: "picked", From: 1, To: "added"})
	}
	type want struct {
		version uint32 // stored version (0: the append must fail)
		err     error
	}
	for _, tc := range []struct {
		name string
		app  func(t *testing.T, l *Log) error // appends one event to "s"
		want want
	}{
		{"no declaration, no upcasters: 1", func(t *testing.T, l *Log) error {
			_, err := Typed[plainV](l).Append(t.Context(), "s", ExpectAny, Event[plainV]{Type: "added", Data: plainV{"a"}})
			return err
		}, want{version: 1}},
		{"upcasters v1→v2: stamped 2", func(t *testing.T, l *Log) error {
			_, err := Typed[plainV](l, WithUpcasters(up())).Append(t.Context(), "s", ExpectAny, Event[plainV]{Type: "added", Data: plainV{"a"}})
			return err
		}, want{version: 2}},
		{"upcasters v1→v2: explicit 1 refused", func(t *testing.T, l *Log) error {
			_, err := Typed[plainV](l, WithUpcasters(up())).Append(t.Context(), "s", ExpectAny, Event[plainV]{Type: "added", SchemaVersion: 1, Data: plainV{"a"}})
			return err
		}, want{err: ErrSchemaVersion}},
		{"upcasters v1→v2: explicit 2 kept", func(t *testing.T, l *Log) error {
			_, err := Typed[plainV](l, WithUpcasters(up())).Append(t.Context(), "s", ExpectAny, Event[plainV]{Type: "added", SchemaVersion: 2, Data: plainV{"a"}})
			return err
		}, want{version: 2}},
		{"upcasters of another type: 1", func(t *testing.T, l *Log) error {
			_, err := Typed[plainV](l, WithUpcasters(up())).Append(t.Context(), "s", ExpectAny, Event[plainV]{Type: "removed", Data: plainV{"a"}})
			return err
		}, want{version: 1}},
		{"renamed-away type refused", func(t *testing.T, l *Log) error {
			_, err := Typed[plainV](l, WithUpcasters(renamed())).Append(t.Context(), "s", ExpectAny, Event[plainV]{Type: "picked", Data: plainV{"a"}})
			return err
		}, want{err: ErrSchemaVersion}},
		{"declared 3: stamped", func(t *testing.T, l *Log) error {
			_, err := Typed[itemV3](l).Append(t.Context(), "s", ExpectAny, Event[itemV3]{Type: "added", Data: itemV3{"a"}})
			return err
		}, want{version: 3}},
		{"declared 3: explicit 2 refused", func(t *testing.T, l *Log) error {
			_, err := Typed[itemV3](l).Append(t.Context(), "s", ExpectAny, Event[itemV3]{Type: "added", SchemaVersion: 2, Data: itemV3{"a"}})
			return err
		}, want{err: ErrSchemaVersion}},
		{"declared 1 below the upcasters' 2 refused", func(t *testing.T, l *Log) error {
			_, err := Typed[itemV1](l, WithUpcasters(up())).Append(t.Context(), "s", ExpectAny, Event[itemV1]{Type: "added", Data: itemV1{"a"}})
			return err
		}, want{err: ErrSchemaVersion}},
		{"AppendBatch stamps", func(t *testing.T, l *Log) error {
			_, err := Typed[plainV](l, WithUpcasters(up())).AppendBatch(t.Context(), []Batch[plainV]{{Stream: "s", Events: []Event[plainV]{{Type: "added", Data: plainV{"a"}}}}})
			return err
		}, want{version: 2}},
		{"AppendBatch refuses", func(t *testing.T, l *Log) error {
			_, err := Typed[plainV](l, WithUpcasters(up())).AppendBatch(t.Context(), []Batch[plainV]{
				{Stream: "other", Events: []Event[plainV]{{Type: "added", Data: plainV{"a"}}}},
				{Stream: "s", Events: []Event[plainV]{{Type: "added", SchemaVersion: 1, Data: plainV{"a"}}}}})
			return err
		}, want{err: ErrSchemaVersion}},
		{"Request stamps", func(t *testing.T, l *Log) error {
			req, err := Typed[plainV](l, WithUpcasters(up())).Request("s", ExpectAny, Event[plainV]{Type: "added", Data: plainV{"a"}})
			if err != nil {
				return err
			}
			_, err = l.AppendBatch(t.Context(), []AppendRequest{req})
			return err
		}, want{version: 2}},
		{"Request refuses", func(t *testing.T, l *Log) error {
			_, err := Typed[plainV](l, WithUpcasters(up())).Request("s", ExpectAny, Event[plainV]{Type: "added", SchemaVersion: 1, Data: plainV{"a"}})
			return err
		}, want{err: ErrSchemaVersion}},
		{"Codec.Encode stamps", func(t *testing.T, l *Log) error {
			env, err := NewCodec[plainV](up()).Encode(Event[plainV]{Type: "added", Data: plainV{"a"}})
			if err != nil {
				return err
			}
			_, err = l.Append(t.Context(), "s", ExpectAny, env)
			return err
		}, want{version: 2}},
		{"Codec.Encode refuses", func(t *testing.T, l *Log) error {
			_, err := NewCodec[plainV](up()).Encode(Event[plainV]{Type: "added", SchemaVersion: 1, Data: plainV{"a"}})
			return err
		}, want{err: ErrSchemaVersion}},
		{"Encode stamps the declared version", func(t *testing.T, l *Log) error {
			env, err := Encode(Event[itemV3]{Type: "added", Data: itemV3{"a"}})
			if err != nil {
				return err
			}
			_, err = l.Append(t.Context(), "s", ExpectAny, env)
			return err
		}, want{version: 3}},
		{"Encode of an undeclared payload keeps an explicit version", func(t *testing.T, l *Log) error {
			env, err := Encode(Event[string]{Type: "added", SchemaVersion: 1, Data: "a"})
			if err != nil {
				return err
			}
			_, err = l.Append(t.Context(), "s", ExpectAny, env)
			return err
		}, want{version: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openMem(t, vfs.NewMem(), Options{Clock: fakeClock(t0, time.Second)})
			defer l.Close()
			err := tc.app(t, l)
			if tc.want.err != nil {
				if !errors.Is(err, tc.want.err) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("append: %v, want %v (and ErrInvalid)", err, tc.want.err)
				}
				if _, ok := errors.AsType[*SchemaVersionError](err); !ok {
					t.Fatalf("append: %T, want a *SchemaVersionError", err)
				}
				if n := l.LastSeq(); n != 0 {
					t.Fatalf("a refused append wrote %d events", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("append: %v", err)
			}
			got := readAll(t, l)
			if len(got) != 1 || got[0].SchemaVersion != tc.want.version {
				t.Fatalf("stored %+v, want one event at schema version %d", got, tc.want.version)
			}
		})
	}
}

// TestTypedStampedReadsBack: the scenario end to end — a v1 event
// (a bare name) and an event appended through the upcasting view without a
// SchemaVersion both read back through the view.
func TestTypedStampedReadsBack(t *testing.T) {
	ctx := t.Context()
	l := openMem(t, vfs.NewMem(), Options{Clock: fakeClock(t0, time.Second)})
	defer l.Close()
	old, err := Encode(Event[string]{Type: "added", SchemaVersion: 1, Data: "potion"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "s", ExpectAny, old); err != nil {
		t.Fatal(err)
	}
	tl := Typed[plainV](l, WithUpcasters(NewUpcasters().MustRegister(Upcast{Type: "added", From: 1, Fn: toV2})))
	if _, err := tl.Append(ctx, "s", ExpectAny, Event[plainV]{Type: "added", Data: plainV{"sword"}}); err != nil {
		t.Fatal(err)
	}
	var got []plainV
	for e, err := range tl.Stream(ctx, "s", 1) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Data)
	}
	if d := cmp.Diff([]plainV{{"potion"}, {"sword"}}, got); d != "" {
		t.Fatalf("read (-want +got):\n%s", d)
	}
}

// TestDeclaredVersionKeepsPlan: a SchemaVersion method does not take a
// flat struct off the encoder plan (the typed hot path).
func TestDeclaredVersionKeepsPlan(t *testing.T) {
	if planFor[itemV3]() == nil {
		t.Fatal("itemV3 (flat, SchemaVersion its only method) has no encoder plan")
	}
	if declaredVersion[itemV3]() != 3 || declaredVersion[*itemV3]() != 3 || declaredVersion[plainV]() != 0 || declaredVersion[any]() != 0 {
		t.Fatal("declaredVersion misreads the SchemaVersion methods")
	}
}
