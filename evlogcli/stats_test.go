package evlogcli

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"
)

func TestStatsEncodingDeterministic(t *testing.T) {
	s := newStats()
	for i := range 40 {
		s.Streams[string(rune('a'+i))] = streamStats{Count: uint64(i), Version: uint64(i) + 1}
	}
	s.Types["x"], s.Types["y"], s.Seq, s.Events = 1, 2, 99, 3
	a, err := encodeStats(s)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		b, _ := encodeStats(s)
		if !bytes.Equal(a, b) {
			t.Fatal("encodeStats is not deterministic")
		}
	}
	got, err := decodeStats(a)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(s, got); d != "" {
		t.Fatalf("round trip (-want +got):\n%s", d)
	}
	// The same bytes msgpack itself decodes into the struct.
	var viaLib stats
	if err := msgpack.Unmarshal(a, &viaLib); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(s, viaLib); d != "" {
		t.Fatalf("msgpack.Unmarshal (-want +got):\n%s", d)
	}
}

// TestDecodeStatsAsMsgpack checks the hand-written decodeStats against
// msgpack.Unmarshal into the struct (what it replaced) on encodings
// encodeStats never writes: reflection's own (unsorted maps, nil maps,
// fields in another order), negative-int and nil numbers, unknown fields,
// nested nil entries.
func TestDecodeStatsAsMsgpack(t *testing.T) {
	marshal := func(v any) []byte {
		t.Helper()
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	full := newStats()
	full.Seq, full.Events = 1<<40, 300
	full.Streams["a-1"] = streamStats{Count: 2, Version: 7}
	full.Streams[""] = streamStats{Count: 1}
	full.Types["t"], full.Types["ü"] = 5, 1<<33
	tests := []struct {
		name string
		in   []byte
	}{
		{"reflection encoding", marshal(full)},
		{"nil maps", marshal(stats{Seq: 3})},
		{"nil", marshal(nil)},
		{"empty map", marshal(map[string]any{})},
		{"other order, unknown fields, int numbers", marshal(map[string]any{
			"types": map[string]any{"x": int8(4)}, "extra": []any{1, "two", map[string]any{"k": nil}},
			"streams": map[string]any{"s": map[string]any{"version": int64(9), "note": "hi", "count": nil}, "z": nil},
			"events":  int16(12), "seq": uint8(200),
		})},
	}
	many := map[string]any{}
	for i := range 20 { // map16
		many[fmt.Sprint("s-", i)] = map[string]any{"count": i, "version": i + 1}
	}
	tests = append(tests, []struct {
		name string
		in   []byte
	}{
		{"every integer width and sign", marshal(map[string]any{
			"seq": uint64(1 << 63), "events": int64(-1),
			"types": map[string]any{"a": int16(-300), "b": uint32(1 << 31), "c": int32(-70000), "d": uint8(255), "e": int8(-3), "f": uint16(65535), "g": -5},
			"streams": map[string]any{
				"s":                       map[string]any{"count": uint16(65535), "version": int8(-3)},
				string(make([]byte, 40)):  map[string]any{"count": uint32(70000)}, // str8 key
				string(make([]byte, 300)): map[string]any{"version": int32(-1)},   // str16 key
			},
		})},
		{"map16 of streams", marshal(map[string]any{"streams": many})},
		// A bin key and a nil key (the empty name), which DecodeString
		// accepts, written by hand.
		{"bin and nil keys", []byte{0x82, 0xc4, 0x03, 's', 'e', 'q', 0x05, 0xa5, 't', 'y', 'p', 'e', 's', 0x81, 0xc0, 0x07}},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := newStats()
			if err := msgpack.Unmarshal(tt.in, &want); err != nil {
				t.Fatal(err)
			}
			if want.Streams == nil {
				want.Streams = map[string]streamStats{}
			}
			if want.Types == nil {
				want.Types = map[string]uint64{}
			}
			got, err := decodeStats(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("decodeStats differs from msgpack.Unmarshal (-want +got):\n%s", d)
			}
		})
	}
}

// FuzzDecodeStats: no input makes decodeStats panic, and one it accepts
// decodes to what msgpack.Unmarshal into the struct decodes, unless that
// input repeats a top-level field (repeatsField) or the library refuses
// it.
func FuzzDecodeStats(f *testing.F) {
	good, err := encodeStats(stats{Seq: 9, Events: 2, Streams: map[string]streamStats{"s": {1, 1}, "t": {1, 4}}, Types: map[string]uint64{"x": 2}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{0x82, 0xc4, 0x03, 's', 'e', 'q', 0x05, 0xa5, 't', 'y', 'p', 'e', 's', 0x81, 0xc0, 0x07})
	f.Add([]byte{0xc0})
	f.Add(append(mpAppendStr([]byte{0x81}, "streams"), 0xdf, 0xff, 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeStats(b)
		if err != nil || repeatsField(b) {
			return
		}
		want := newStats()
		if msgpack.Unmarshal(b, &want) != nil {
			return // the library refuses some inputs decodeStats skips
		}
		if want.Streams == nil {
			want.Streams = map[string]streamStats{}
		}
		if want.Types == nil {
			want.Types = map[string]uint64{}
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("decodeStats differs from msgpack.Unmarshal (-want +got):\n%s", d)
		}
	})
}

// repeatsField reports whether b, a state decodeStats accepted, has a
// top-level field twice: msgpack.Unmarshal merges a repeated map field
// into the first, decodeStats keeps the last (both keep the last of any
// other repeated key).
func repeatsField(b []byte) bool {
	r := &statsIn{mpDec{b: b}}
	seen := map[string]bool{}
	dup := false
	_ = r.fields(func(k []byte) error {
		dup = dup || seen[string(k)]
		seen[string(k)] = true
		return r.skip()
	})
	return dup
}

// TestDecodeStatsHostile feeds decodeStats damaged states: each is an
// error, and a map claiming 2^32-1 entries in a few bytes does not
// allocate for them.
func TestDecodeStatsHostile(t *testing.T) {
	good, err := encodeStats(stats{Seq: 1, Events: 1, Streams: map[string]streamStats{"s": {1, 1}}, Types: map[string]uint64{"t": 1}})
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(good) {
		if _, err := decodeStats(good[:n]); err == nil && n > 0 {
			t.Errorf("truncated to %d of %d bytes: no error", n, len(good))
		}
	}
	huge := mpAppendStr([]byte{0x81}, "streams")
	huge = append(huge, 0xdf, 0xff, 0xff, 0xff, 0xff) // map32 of 2^32-1 entries
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := decodeStats(huge); err == nil {
			t.Fatal("a map of 2^32-1 entries in 14 bytes: no error")
		}
	})
	if allocs > 50 {
		t.Errorf("%v allocations for a 14-byte state", allocs)
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	before := m.TotalAlloc
	decodeStats(huge)
	runtime.ReadMemStats(&m)
	if got := m.TotalAlloc - before; got > 1<<16 {
		t.Errorf("decoding a 14-byte state allocated %d bytes", got)
	}
}

// TestStateJSONAsEncodingJSON checks state's streamed JSON document
// against encoding/json's (writeJSON, what it replaced) byte for byte:
// names needing escapes, invalid UTF-8, U+2028, HTML characters, nil
// maps, no state, a snapshot with fallbacks, and a state large enough to
// pass through the writer's buffer in several chunks.
func TestStateJSONAsEncodingJSON(t *testing.T) {
	tm := "2026-01-01T00:00:00Z"
	big := newStats()
	for i := range 3000 {
		big.Streams[fmt.Sprintf("order-%05d", i)] = streamStats{Count: uint64(i), Version: uint64(i) * 3}
		big.Types[fmt.Sprintf("T%d", i%7)]++
	}
	odd := newStats()
	for _, k := range []string{"", `q"uote`, `back\slash`, "tab\tnew\nline\r\b\f\x00\x1f\x7f", "<a&b>", "bad\xffutf8", "line\u2028sep\u2029", "ü-é", "😀"} {
		odd.Streams[k] = streamStats{Count: 1, Version: 2}
		odd.Types[k] = 3
	}
	plan := planJSON{FromSeq: 5, ToSeq: 9, Fallbacks: []fallbackJSON{}}
	snapPlan := planJSON{Snapshot: &planSnapshotJSON{File: "x.snap", Seq: 4, Time: tm}, FromSeq: 5, ToSeq: 4,
		Fallbacks: []fallbackJSON{{File: "y.snap", Seq: 8, Reason: `bad <"checksum">`}}}
	tests := []struct {
		name string
		out  stateResult
	}{
		{"dry run", stateResult{Plan: plan, ElapsedMS: 0.001}},
		{"nil fallbacks", stateResult{Plan: planJSON{}, ElapsedMS: 1e21}},
		{"tiny elapsed", stateResult{Plan: plan, ElapsedMS: 1.5e-9}},
		{"zero elapsed", stateResult{Plan: plan}},
		{"large elapsed", stateResult{Plan: plan, ElapsedMS: 123456789.125}},
		{"two fallbacks, odd names", stateResult{Plan: planJSON{Snapshot: &planSnapshotJSON{File: "a\u2028\"b", Seq: 1, Time: "t\x01"},
			Fallbacks: []fallbackJSON{{File: "<f>", Seq: 2, Reason: "r\xff"}, {File: "g", Seq: 3, Reason: "line\nbreak"}}}, ElapsedMS: 7}},
		{"empty state", stateResult{Plan: plan, State: &stateJSON{stats: newStats()}, ElapsedMS: 12.5}},
		{"nil maps", stateResult{Plan: snapPlan, State: &stateJSON{stats: stats{Seq: 1}, Time: &tm}, ElapsedMS: 3}},
		{"odd names", stateResult{Plan: snapPlan, State: &stateJSON{stats: odd, Time: &tm}, ElapsedMS: 0.25}},
		{"big", stateResult{Plan: plan, State: &stateJSON{stats: big, Time: &tm}, ElapsedMS: 123.456}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want, got bytes.Buffer
			if err := writeJSON(&want, tt.out); err != nil {
				t.Fatal(err)
			}
			if err := tt.out.writeJSON(&got); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want.String(), got.String()); d != "" {
				t.Fatalf("streamed document differs from encoding/json's (-want +got):\n%s", d)
			}
		})
	}
}

// TestDecodeStatsDeep: a stats snapshot state (untrusted bytes from disk)
// whose unknown field nests arrays millions deep is an error, not a stack
// overflow (the decoder skips unknown fields recursively).
func TestDecodeStatsDeep(t *testing.T) {
	deep := mpAppendStr([]byte{0x81}, "x")
	deep = append(append(deep, bytes.Repeat([]byte{0x91}, 16<<20)...), 0xc0)
	if _, err := decodeStats(deep); err == nil {
		t.Fatal("a state nested 16M deep: no error")
	}
	shallow := mpAppendStr([]byte{0x81}, "x")
	shallow = append(append(shallow, bytes.Repeat([]byte{0x91}, 3)...), 0xc0)
	if _, err := decodeStats(shallow); err != nil {
		t.Fatalf("an unknown field nested 3 deep: %v", err)
	}
}

// BenchmarkDecodeStats: the state of 1,000 streams and 3 types that
// "evlogctl state" decodes from a snapshot (workload 10 of bench/).
func BenchmarkDecodeStats(b *testing.B) {
	s := newStats()
	for i := range 1000 {
		s.Streams[fmt.Sprint("m-", i)] = streamStats{Count: 1975, Version: 1975}
	}
	s.Types["a"], s.Types["b"], s.Types["c"], s.Seq, s.Events = 1, 2, 3, 1_900_000, 1_900_000
	enc, err := encodeStats(s)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeStats(enc); err != nil {
			b.Fatal(err)
		}
	}
}
