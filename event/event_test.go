package event

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExpectation(t *testing.T) {
	for _, tc := range []struct {
		e       Expectation
		current uint64
		ok      bool
	}{
		{ExpectAny, 0, true},
		{ExpectAny, 42, true},
		{ExpectNoStream, 0, true},
		{ExpectNoStream, 1, false},
		{ExpectVersion(0), 0, true},
		{ExpectVersion(3), 3, true},
		{ExpectVersion(3), 4, false},
		{ExpectVersion(3), 2, false},
		{Expectation(-7), 0, false},
	} {
		if got := tc.e.Check(tc.current); got != tc.ok {
			t.Errorf("%v.Check(%d) = %v, want %v", tc.e, tc.current, got, tc.ok)
		}
	}
	if Expectation(-7).Valid() || !ExpectAny.Valid() || !ExpectVersion(9).Valid() {
		t.Error("Valid")
	}
	if ExpectVersion(1<<63) == ExpectAny {
		t.Error("a huge version must not turn into ExpectAny")
	}
}

func TestConflictErrorMatches(t *testing.T) {
	var err error = &ConflictError{Stream: "s", Expected: ExpectVersion(2), Actual: 5}
	if !errors.Is(err, ErrVersionConflict) {
		t.Fatal("ConflictError must match ErrVersionConflict")
	}
	ce, ok := errors.AsType[*ConflictError](err)
	if !ok || ce.Actual != 5 {
		t.Fatalf("AsType: %v %v", ce, ok)
	}
}

func TestValidateFields(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	bigMeta := map[string]string{}
	for i := range MaxMetaEntries + 1 {
		bigMeta[long(i+1)] = "v"
	}
	for _, tc := range []struct {
		name string
		e    Envelope
		ok   bool
	}{
		{"minimal", Envelope{Stream: "s", Type: "t"}, true},
		{"no stream", Envelope{Type: "t"}, false},
		{"no type", Envelope{Stream: "s"}, false},
		{"stream at the limit", Envelope{Stream: long(MaxStreamLen), Type: "t"}, true},
		{"stream too long", Envelope{Stream: long(MaxStreamLen + 1), Type: "t"}, false},
		{"type too long", Envelope{Stream: "s", Type: long(MaxTypeLen + 1)}, false},
		{"id too long", Envelope{Stream: "s", Type: "t", ID: long(MaxIDLen + 1)}, false},
		{"too many meta entries", Envelope{Stream: "s", Type: "t", Meta: bigMeta}, false},
		{"meta key too long", Envelope{Stream: "s", Type: "t", Meta: map[string]string{long(MaxMetaKeyLen + 1): ""}}, false},
		{"meta value too long", Envelope{Stream: "s", Type: "t", Meta: map[string]string{"k": long(MaxMetaValueLen + 1)}}, false},
	} {
		err := tc.e.ValidateFields()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%s: %v", tc.name, err)
		}
		// The limits hold for copied events too (ValidateLimits).
		err = tc.e.ValidateLimits()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%s: ValidateLimits: %v", tc.name, err)
		}
	}
}

// TestValidateFieldsAfter: after a valid event, only a name equal to the
// previous event's is taken as checked; every other field, and a name
// that differs, is checked as ValidateFields checks it.
func TestValidateFieldsAfter(t *testing.T) {
	prev := Envelope{Stream: "orders-1", Type: "placed"}
	for _, tc := range []struct {
		name string
		e    Envelope
		ok   bool
	}{
		{"same names", Envelope{Stream: "orders-1", Type: "placed"}, true},
		{"other valid names", Envelope{Stream: "orders-2", Type: "paid"}, true},
		{"bad stream, same type", Envelope{Stream: "orders\n2", Type: "placed"}, false},
		{"same stream, bad type", Envelope{Stream: "orders-1", Type: "pa\u202eid"}, false},
		{"same stream, no type", Envelope{Stream: "orders-1"}, false},
		{"same names, id too long", Envelope{Stream: "orders-1", Type: "placed", ID: strings.Repeat("x", MaxIDLen+1)}, false},
		{"same names, meta value too long", Envelope{Stream: "orders-1", Type: "placed", Meta: map[string]string{"k": strings.Repeat("x", MaxMetaValueLen+1)}}, false},
	} {
		err := tc.e.ValidateFieldsAfter(&prev)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if want := tc.e.ValidateFields(); (want == nil) != (err == nil) {
			t.Errorf("%s: ValidateFieldsAfter says %v, ValidateFields %v", tc.name, err, want)
		}
	}
	// A zero prev (nothing validated yet) checks everything.
	if err := (&Envelope{Stream: "a\x00", Type: "t"}).ValidateFieldsAfter(&Envelope{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("after a zero envelope: %v", err)
	}
}

func TestCloneIsDeep(t *testing.T) {
	e := Envelope{Stream: "s", Meta: map[string]string{"a": "1"}, Data: []byte{1, 2}}
	c := e.Clone()
	c.Meta["a"] = "2"
	c.Data[0] = 9
	if d := cmp.Diff(Envelope{Stream: "s", Meta: map[string]string{"a": "1"}, Data: []byte{1, 2}}, e); d != "" {
		t.Fatalf("modifying the clone changed the original:\n%s", d)
	}
}

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"cart-42", true},
		{"with spaces and punctuation: a/b.c*>#", true},
		{"ünïcødé 订单 🙂", true},
		{"no-break\u00a0space", true},
		{"replacement char \ufffd spelled out", true},
		{"", true}, // emptiness is ValidateFields' check
		{"tab\t", false},
		{"\nnewline", false},
		{"nul\x00", false},
		{"esc\x1b[2J", false},
		{"del\x7f", false},
		{"c1\u009b", false},
		{"ls\u2028", false},
		{"ps\u2029", false},
		{"rlo\u202e", false},
		{"lri\u2066", false},
		{"alm\u061c", false},
		{"rlm\u200f", false},
		{"bad utf-8 \xff", false},
		{"truncated \xe2\x82", false},
		{"overlong \xc0\xaf", false},
		{"surrogate \xed\xa0\x80", false},
	} {
		if got := ValidName(tc.name); got != tc.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
		e := Envelope{Stream: "s" + tc.name, Type: "t"}
		if err := e.ValidateFields(); (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateFields with stream %q: %v", e.Stream, err)
		}
		e = Envelope{Stream: "s", Type: "t" + tc.name}
		if err := e.ValidateFields(); (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateFields with type %q: %v", e.Type, err)
		}
		// ValidateLimits leaves the name rule out (names an older evlog stored).
		e = Envelope{Stream: "s" + tc.name, Type: "t" + tc.name}
		if err := e.ValidateLimits(); err != nil {
			t.Errorf("ValidateLimits with stream %q and type %q: %v", e.Stream, e.Type, err)
		}
	}
}
