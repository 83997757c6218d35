package evlog

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/internal/vfs"
)

type planAll struct {
	S       string
	B       bool
	I       int
	I8      int8
	I16     int16
	I32     int32
	I64     int64
	U       uint
	U8      uint8
	U16     uint16
	U32     uint32
	U64     uint64
	F32     float32
	F64     float64
	Renamed string `msgpack:"r"`
	Skipped string `msgpack:"-"`
	hidden  int
}

// msgpackBytes encodes v as the typed view always has: msgpack's Encode
// of a pointer, compact ints, sorted map keys.
func msgpackBytes(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := msgpack.NewEncoder(&b)
	enc.UseCompactInts(true)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPlanMatchesMsgpack: a flat struct's compiled plan writes the bytes
// msgpack's reflection writes, for random values of every scalar kind.
func TestPlanMatchesMsgpack(t *testing.T) {
	if planFor[benchItem]() == nil || planFor[sizedPayload]() == nil {
		t.Fatal("no plan for a flat struct")
	}
	p := planFor[planAll]()
	if p == nil {
		t.Fatal("no plan for planAll")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	anyInt := func() int64 {
		switch rng.IntN(4) {
		case 0:
			return int64(rng.IntN(256) - 128)
		case 1:
			return int64(rng.Int32())
		case 2:
			return math.MinInt64 + rng.Int64N(10)
		}
		return rng.Int64()
	}
	var pe payloadEncoder
	pe.reset()
	for range 2000 {
		i := anyInt()
		u := rng.Uint64() >> rng.IntN(64)
		v := planAll{S: string(make([]byte, rng.IntN(70_000)>>rng.IntN(17))), B: rng.IntN(2) == 0,
			I: int(i), I8: int8(i), I16: int16(i), I32: int32(i), I64: i,
			U: uint(u), U8: uint8(u), U16: uint16(u), U32: uint32(u), U64: u,
			F32: float32(rng.NormFloat64()), F64: rng.NormFloat64() * 1e10, Renamed: "x", Skipped: "y", hidden: 3}
		pe.w.b = pe.w.b[:0]
		if err := p.encode(pe.enc, reflect.ValueOf(&v).UnsafePointer()); err != nil {
			t.Fatal(err)
		}
		if want := msgpackBytes(t, &v); !bytes.Equal(pe.w.b, want) {
			t.Fatalf("plan wrote %x, msgpack %x, for %+v", pe.w.b, want, v)
		}
	}
}

type (
	rarity         string
	planNamedField struct{ R rarity }
	planOmitEmpty  struct {
		S string `msgpack:"s,omitempty"`
	}
	planAsArray struct {
		_msgpack struct{} `msgpack:",as_array"`
		S        string
	}
	planEmbedded   struct{ planAll }
	planPointer    struct{ P *int }
	planSlice      struct{ B []byte }
	planTime       struct{ T time.Time }
	planWithMethod struct{ S string }
)

func (planWithMethod) String() string { return "m" }

// TestPlanFallback: payloads a plan does not model exactly go through
// msgpack, and the typed view stores what msgpack writes for them.
func TestPlanFallback(t *testing.T) {
	for _, tc := range []struct {
		name string
		plan *structPlan
	}{
		{"named field type", planFor[planNamedField]()},
		{"omitempty", planFor[planOmitEmpty]()},
		{"as_array", planFor[planAsArray]()},
		{"embedded", planFor[planEmbedded]()},
		{"pointer field", planFor[planPointer]()},
		{"slice field", planFor[planSlice]()},
		{"time field", planFor[planTime]()},
		{"method", planFor[planWithMethod]()},
		{"not a struct", planFor[map[string]int]()},
		{"custom encoder", planFor[customItem]()},
	} {
		if tc.plan != nil {
			t.Errorf("%s: compiled a plan", tc.name)
		}
	}
	l := openMem(t, vfs.NewMem(), Options{})
	defer l.Close()
	v := planAsArray{S: "x"}
	if _, err := Typed[planAsArray](l).Append(t.Context(), "s", ExpectAny, Event[planAsArray]{Type: "t", Data: v}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, l)[0].Data; !bytes.Equal(got, msgpackBytes(t, &v)) {
		t.Fatalf("stored %x, msgpack writes %x", got, msgpackBytes(t, &v))
	}
}
