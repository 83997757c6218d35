package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/event"
)

// metaN returns a meta map of n entries with keys of keyLen bytes (at
// least) and values of valLen bytes.
func metaN(n, keyLen, valLen int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		k := fmt.Sprintf("k%02d", i)
		k += strings.Repeat("k", max(0, keyLen-len(k)))
		m[k] = strings.Repeat(string(rune('a'+i%26)), valLen)
	}
	return m
}

func dataN(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// codecCase is an envelope exercising some size class of the encoding.
type codecCase struct {
	name string
	env  event.Envelope
}

// codecCases covers every field and every size class of the msgpack
// encodings the envelope uses.
func codecCases() []codecCase {
	base := func() event.Envelope {
		return event.Envelope{Seq: 1, Stream: "s", Version: 1, Type: "t", SchemaVersion: 1, Time: time.Unix(0, t0).UTC()}
	}
	with := func(name string, f func(e *event.Envelope)) codecCase {
		e := base()
		f(&e)
		return codecCase{name, e}
	}
	var cases []codecCase
	cases = append(cases, with("minimal", func(*event.Envelope) {}))
	for _, n := range []int{1, 31, 32, 255, 256, 65535, 65536, 1 << 32, math.MaxUint32, math.MaxInt64} {
		cases = append(cases,
			with(fmt.Sprintf("seq=%d", max(n, 1)), func(e *event.Envelope) { e.Seq = uint64(max(n, 1)) }),
			with(fmt.Sprintf("version=%d", max(n, 1)), func(e *event.Envelope) { e.Version = uint64(max(n, 1)) }),
		)
	}
	for _, n := range []uint64{127, 128, math.MaxUint64} {
		cases = append(cases,
			with(fmt.Sprintf("seq=%d", n), func(e *event.Envelope) { e.Seq = n }),
			with(fmt.Sprintf("version=%d", n), func(e *event.Envelope) { e.Version = n }),
		)
	}
	for _, n := range []uint32{1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32} {
		cases = append(cases, with(fmt.Sprintf("schema=%d", n), func(e *event.Envelope) { e.SchemaVersion = n }))
	}
	for _, n := range []int{1, 31, 32, 255, 256, 1000, event.MaxStreamLen} {
		cases = append(cases, with(fmt.Sprintf("stream=%dB", n), func(e *event.Envelope) { e.Stream = strings.Repeat("S", n) }))
	}
	for _, n := range []int{1, 31, 32, 255, event.MaxTypeLen} {
		cases = append(cases, with(fmt.Sprintf("type=%dB", n), func(e *event.Envelope) { e.Type = strings.Repeat("T", n) }))
	}
	for _, n := range []int{1, 31, 32, 255, event.MaxIDLen} {
		cases = append(cases, with(fmt.Sprintf("id=%dB", n), func(e *event.Envelope) { e.ID = strings.Repeat("i", n) }))
	}
	for _, ns := range []int64{
		0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -31, -32, -33, -127, -128, -129, -32767, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64,
		time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC).UnixNano(), // pre-1970
		time.Date(1700, 1, 1, 0, 0, 0, 1, time.UTC).UnixNano(),
	} {
		cases = append(cases, with(fmt.Sprintf("time=%d", ns), func(e *event.Envelope) { e.Time = time.Unix(0, ns).UTC() }))
	}
	cases = append(cases,
		with("time=MinTime", func(e *event.Envelope) { e.Time = MinTime }),
		with("time=MaxTime", func(e *event.Envelope) { e.Time = MaxTime }),
		with("meta=empty", func(e *event.Envelope) { e.Meta = map[string]string{} }),
		with("meta=1", func(e *event.Envelope) { e.Meta = map[string]string{"correlation": "abc"} }),
		with("meta=empty key and value", func(e *event.Envelope) { e.Meta = map[string]string{"": ""} }),
		with("meta=15", func(e *event.Envelope) { e.Meta = metaN(15, 3, 3) }),
		with("meta=16", func(e *event.Envelope) { e.Meta = metaN(16, 3, 3) }),
		with("meta=max", func(e *event.Envelope) {
			e.Meta = metaN(event.MaxMetaEntries, event.MaxMetaKeyLen, event.MaxMetaValueLen)
		}),
		with("meta=str8 key, str16 value", func(e *event.Envelope) { e.Meta = metaN(2, 40, 300) }),
		with("data=empty", func(e *event.Envelope) { e.Data = []byte{} }),
	)
	for _, n := range []int{1, 255, 256, 65535, 65536, 100 << 10} {
		cases = append(cases, with(fmt.Sprintf("data=%dB", n), func(e *event.Envelope) { e.Data = dataN(n) }))
	}
	cases = append(cases, with("everything", func(e *event.Envelope) {
		e.Seq, e.Version, e.SchemaVersion = 1<<40, 70000, 300
		e.Stream, e.Type, e.ID = strings.Repeat("x", 300), strings.Repeat("y", 40), "idem-42"
		e.Time = time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC)
		e.Meta = metaN(20, 10, 100)
		e.Data = dataN(70000)
	}))
	return cases
}

// bytesOpt compares byte slices quickly (cmp's generic diff of large slices
// is slow), keeping nil distinct from empty.
var bytesOpt = cmp.Comparer(func(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) })

// decoded returns what decoding the encoding of e yields: empty Data comes
// back nil.
func decoded(e event.Envelope) event.Envelope {
	if len(e.Data) == 0 {
		e.Data = nil
	}
	return e
}

func TestEnvelopeRoundTrip(t *testing.T) {
	var dec Decoder
	for _, tc := range codecCases() {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.env.ValidateFields(); err != nil {
				t.Fatalf("test envelope is invalid: %v", err)
			}
			frame := AppendEventFrame([]byte("prefix"), &tc.env)
			frame = frame[len("prefix"):]
			if got, want := len(frame), EncodedSize(&tc.env); got != want {
				t.Errorf("frame is %d bytes, EncodedSize says %d", got, want)
			}
			fs, err := readAllFrames(frame, 0, int64(len(frame)))
			if !errors.Is(err, io.EOF) || len(fs) != 1 || fs[0].Kind != KindEvent {
				t.Fatalf("reading the frame back: %d frames, %v", len(fs), err)
			}
			if !bytes.Equal(fs[0].Payload, AppendEnvelope(nil, &tc.env)) {
				t.Errorf("frame payload differs from AppendEnvelope")
			}
			var got event.Envelope
			if err := dec.Decode(fs[0].Payload, &got); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(decoded(tc.env), got, bytesOpt); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			if got.Time.Location() != time.UTC {
				t.Errorf("decoded time is in %v, want UTC", got.Time.Location())
			}
			if got.Time.UnixNano() != tc.env.Time.UnixNano() {
				t.Errorf("decoded time %d ns, want %d", got.Time.UnixNano(), tc.env.Time.UnixNano())
			}
			if len(got.Data) > 0 && !aliases(got.Data, fs[0].Payload) {
				t.Errorf("decoded Data does not alias the payload (documented contract)")
			}
		})
	}
}

// aliases reports whether sub lies within b's memory.
func aliases(sub, b []byte) bool {
	if len(sub) == 0 || len(b) == 0 {
		return false
	}
	s, e := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&b[len(b)-1]))
	p := uintptr(unsafe.Pointer(&sub[0]))
	return p >= s && p <= e
}

// Nil and empty meta are distinct on the wire and after decoding.
func TestEnvelopeNilVersusEmptyMeta(t *testing.T) {
	var dec Decoder
	for _, meta := range []map[string]string{nil, {}} {
		e := event.Envelope{Seq: 1, Stream: "s", Version: 1, Type: "t", SchemaVersion: 1, Meta: meta}
		var got event.Envelope
		if err := dec.Decode(AppendEnvelope(nil, &e), &got); err != nil {
			t.Fatal(err)
		}
		if (got.Meta == nil) != (meta == nil) || len(got.Meta) != 0 {
			t.Errorf("meta %#v decoded as %#v", meta, got.Meta)
		}
	}
}

// Meta keys are written sorted, so equal envelopes encode identically.
func TestEnvelopeEncodingDeterministic(t *testing.T) {
	e := event.Envelope{Seq: 1, Stream: "s", Version: 1, Type: "t", SchemaVersion: 1, Meta: metaN(20, 5, 5)}
	first := AppendEnvelope(nil, &e)
	for range 50 {
		e.Meta = metaN(20, 5, 5) // a new map: new iteration order
		if got := AppendEnvelope(nil, &e); !bytes.Equal(got, first) {
			t.Fatalf("encodings of equal envelopes differ")
		}
	}
	var keys []string
	// Walk the raw map in wire order.
	r := mpReader{b: first}
	r.readArrayLen()
	for range 7 {
		r.skip(0)
	}
	n, _ := r.readMapLen()
	for range n {
		k, _ := r.readStrBytes()
		keys = append(keys, string(k))
		r.skip(0)
	}
	for i := 1; i < len(keys); i++ {
		if keys[i-1] >= keys[i] {
			t.Fatalf("meta keys not sorted on the wire: %q", keys)
		}
	}
}

func TestDecoderInterns(t *testing.T) {
	var dec Decoder
	e1 := event.Envelope{Seq: 1, Stream: "orders-17", Version: 1, Type: "created", SchemaVersion: 1}
	e2 := event.Envelope{Seq: 2, Stream: "orders-17", Version: 2, Type: "created", SchemaVersion: 1}
	var g1, g2 event.Envelope
	if err := dec.Decode(AppendEnvelope(nil, &e1), &g1); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(AppendEnvelope(nil, &e2), &g2); err != nil {
		t.Fatal(err)
	}
	if g1.Stream != "orders-17" || unsafe.StringData(g1.Stream) != unsafe.StringData(g2.Stream) {
		t.Errorf("stream names %q and %q are not the same interned string", g1.Stream, g2.Stream)
	}
	if unsafe.StringData(g1.Type) != unsafe.StringData(g2.Type) {
		t.Errorf("type names are not interned")
	}
	// The intern table is bounded: past maxInterned distinct names it
	// starts over, and decoding stays correct.
	for i := range maxInterned + 100 {
		e := event.Envelope{Seq: 1, Stream: fmt.Sprintf("s-%d", i), Version: 1, Type: "t", SchemaVersion: 1}
		var g event.Envelope
		if err := dec.Decode(AppendEnvelope(nil, &e), &g); err != nil {
			t.Fatal(err)
		}
		if g.Stream != e.Stream {
			t.Fatalf("decoded stream %q, want %q", g.Stream, e.Stream)
		}
		if len(dec.strs) > maxInterned {
			t.Fatalf("intern table holds %d strings, the bound is %d", len(dec.strs), maxInterned)
		}
	}
}

// The replay hot path: decoding events of a repeating stream with nil meta
// and no ID allocates nothing.
func TestDecodeDoesNotAllocate(t *testing.T) {
	e := event.Envelope{Seq: 12345, Stream: "orders-17", Version: 9, Type: "item_added", SchemaVersion: 2, Time: time.Unix(0, t0).UTC(), Data: dataN(100)}
	p := AppendEnvelope(nil, &e)
	var dec Decoder
	var got event.Envelope
	allocs := testing.AllocsPerRun(200, func() {
		if err := dec.Decode(p, &got); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Decode allocates %v times per event, want 0", allocs)
	}
}

func TestAppendEventFrameDoesNotAllocate(t *testing.T) {
	e := event.Envelope{Seq: 12345, Stream: "orders-17", Version: 9, Type: "item_added", SchemaVersion: 2, ID: "id-1", Time: time.Unix(0, t0).UTC(), Data: dataN(100)}
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(200, func() { buf = AppendEventFrame(buf[:0], &e) })
	if allocs != 0 {
		t.Errorf("AppendEventFrame into a reused buffer allocates %v times, want 0", allocs)
	}
}

// numString formats a number decoded by msgpack/v5 (whatever integer type
// it chose) in decimal.
func numString(v any) string {
	switch v.(type) {
	case int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("not a number: %T %v", v, v)
}

// Cross-check (a): the envelope is standard msgpack that msgpack/v5 reads.
func TestEnvelopeDecodesWithMsgpackV5(t *testing.T) {
	for _, tc := range codecCases() {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.env
			var v []any
			if err := msgpack.Unmarshal(AppendEnvelope(nil, &e), &v); err != nil {
				t.Fatalf("msgpack.Unmarshal: %v", err)
			}
			if len(v) != envelopeFields {
				t.Fatalf("%d fields, want %d", len(v), envelopeFields)
			}
			var meta any
			if e.Meta != nil {
				m := map[string]any{}
				for k, val := range e.Meta {
					m[k] = val
				}
				meta = m
			}
			data := e.Data
			if data == nil {
				data = []byte{} // written as an empty bin, never as nil
			}
			want := []any{
				strconv.FormatUint(e.Seq, 10), e.Stream, strconv.FormatUint(e.Version, 10), e.Type,
				strconv.FormatUint(uint64(e.SchemaVersion), 10), e.ID, strconv.FormatInt(e.Time.UnixNano(), 10),
				meta, data,
			}
			got := []any{numString(v[0]), v[1], numString(v[2]), v[3], numString(v[4]), v[5], numString(v[6]), v[7], v[8]}
			if diff := cmp.Diff(want, got, bytesOpt); diff != "" {
				t.Errorf("msgpack/v5 view of the envelope (-want +got):\n%s", diff)
			}
		})
	}
}

// asArray is the envelope as a msgpack/v5 struct, for typed cross-checks.
type asArray struct {
	_msgpack      struct{} `msgpack:",as_array"`
	Seq           uint64
	Stream        string
	Version       uint64
	Type          string
	SchemaVersion uint32
	ID            string
	Time          int64
	Meta          map[string]string
	Data          []byte
}

// intStyle is a way of writing an unsigned or signed integer with
// msgpack/v5's encoder.
type intStyle struct {
	name string
	uint func(enc *msgpack.Encoder, v uint64) error
	int  func(enc *msgpack.Encoder, v int64) error
}

var intStyles = []intStyle{
	{"compact", (*msgpack.Encoder).EncodeUint, (*msgpack.Encoder).EncodeInt},
	{"fixed64", (*msgpack.Encoder).EncodeUint64, (*msgpack.Encoder).EncodeInt64},
	{"signed", func(enc *msgpack.Encoder, v uint64) error {
		// Non-negative numbers written with signed codes, as some encoders do.
		if v > math.MaxInt64 {
			return enc.EncodeUint64(v)
		}
		return enc.EncodeInt64(int64(v))
	}, func(enc *msgpack.Encoder, v int64) error {
		if v >= 0 && v <= math.MaxUint32 {
			return enc.EncodeUint32(uint32(v)) // and signed fields as unsigned
		}
		return enc.EncodeInt64(v)
	}},
	{"narrow", func(enc *msgpack.Encoder, v uint64) error {
		switch {
		case v <= math.MaxInt8:
			return enc.EncodeInt8(int8(v))
		case v <= math.MaxInt16:
			return enc.EncodeInt16(int16(v))
		case v <= math.MaxInt32:
			return enc.EncodeInt32(int32(v))
		}
		return enc.EncodeUint(v)
	}, func(enc *msgpack.Encoder, v int64) error {
		switch {
		case v >= math.MinInt8 && v <= math.MaxInt8:
			return enc.EncodeInt8(int8(v))
		case v >= math.MinInt16 && v <= math.MaxInt16:
			return enc.EncodeInt16(int16(v))
		}
		return enc.EncodeInt(v)
	}},
}

// encodeV5 writes e as an envelope with msgpack/v5's low-level encoder,
// followed by extra trailing fields.
func encodeV5(t testing.TB, e *event.Envelope, ints intStyle, extra ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check(enc.EncodeArrayLen(envelopeFields + len(extra)))
	check(ints.uint(enc, e.Seq))
	check(enc.EncodeString(e.Stream))
	check(ints.uint(enc, e.Version))
	check(enc.EncodeString(e.Type))
	check(ints.uint(enc, uint64(e.SchemaVersion)))
	check(enc.EncodeString(e.ID))
	check(ints.int(enc, e.Time.UnixNano()))
	if e.Meta == nil {
		check(enc.EncodeNil())
	} else {
		check(enc.EncodeMapLen(len(e.Meta)))
		for k, v := range e.Meta {
			check(enc.EncodeString(k))
			check(enc.EncodeString(v))
		}
	}
	check(enc.EncodeBytes(e.Data)) // nil Data: msgpack nil
	for _, x := range extra {
		check(enc.Encode(x))
	}
	return buf.Bytes()
}

// Cross-check (b): what msgpack/v5's encoder writes, with each of its
// integer encodings, decodes to the same envelope.
func TestDecodeMsgpackV5Encodings(t *testing.T) {
	var dec Decoder
	for _, tc := range codecCases() {
		for _, style := range intStyles {
			t.Run(tc.name+"/"+style.name, func(t *testing.T) {
				p := encodeV5(t, &tc.env, style)
				var got event.Envelope
				if err := dec.Decode(p, &got); err != nil {
					t.Fatalf("Decode(msgpack/v5 bytes % x…): %v", p[:min(len(p), 32)], err)
				}
				if diff := cmp.Diff(decoded(tc.env), got, bytesOpt); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			})
		}
		t.Run(tc.name+"/struct", func(t *testing.T) {
			e := tc.env
			s := asArray{Seq: e.Seq, Stream: e.Stream, Version: e.Version, Type: e.Type, SchemaVersion: e.SchemaVersion,
				ID: e.ID, Time: e.Time.UnixNano(), Meta: e.Meta, Data: e.Data}
			p, err := msgpack.Marshal(&s)
			if err != nil {
				t.Fatal(err)
			}
			var got event.Envelope
			if err := dec.Decode(p, &got); err != nil {
				t.Fatalf("Decode(msgpack.Marshal(struct)): %v", err)
			}
			if diff := cmp.Diff(decoded(e), got, bytesOpt); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			var back asArray
			if err := msgpack.Unmarshal(AppendEnvelope(nil, &e), &back); err != nil {
				t.Fatalf("msgpack.Unmarshal into the struct: %v", err)
			}
			s.Data = e.Data
			if len(s.Data) == 0 {
				s.Data = []byte{}
			}
			if diff := cmp.Diff(s, back, cmp.AllowUnexported(asArray{}), bytesOpt); diff != "" {
				t.Errorf("msgpack/v5 struct view (-want +got):\n%s", diff)
			}
		})
	}
}

// Cross-check (c): later format versions may append fields; this version
// skips them, whatever their type and nesting.
func TestDecodeSkipsExtraFields(t *testing.T) {
	e := event.Envelope{Seq: 7, Stream: "s", Version: 3, Type: "t", SchemaVersion: 1, ID: "x", Time: time.Unix(0, t0).UTC(),
		Meta: map[string]string{"a": "b"}, Data: []byte{0x91, 0x01}}
	deep := any("leaf")
	for range 30 {
		deep = []any{deep}
	}
	extras := [][]any{
		{uint64(1)},
		{"a string", int64(-5), 3.25, float32(1.5), true, false, nil},
		{map[string]any{"nested": []any{1, 2, map[string]any{"deeper": []any{"x", nil, map[string]any{}}}}}},
		{[]any{[]any{}, []any{[]any{1}}, map[string]any{"k": []byte{1, 2, 3}}}},
		{time.Date(2030, 1, 1, 0, 0, 0, 5, time.UTC)}, // ext type -1
		{bytes.Repeat([]byte{0xc1}, 300)},             // bin16 holding bytes invalid as msgpack
		{strings.Repeat("z", 70000)},                  // str32
		{deep},
		make([]any, 20), // array16 envelope of 29 fields
	}
	var dec Decoder
	for i, extra := range extras {
		for _, style := range intStyles[:2] {
			p := encodeV5(t, &e, style, extra...)
			var got event.Envelope
			if err := dec.Decode(p, &got); err != nil {
				t.Errorf("extras %d (%s): Decode: %v", i, style.name, err)
				continue
			}
			if diff := cmp.Diff(e, got, bytesOpt); diff != "" {
				t.Errorf("extras %d (%s) (-want +got):\n%s", i, style.name, diff)
			}
		}
	}
}

// hand-built payload helpers for invalid envelopes.
func mpArr(n int, elems ...[]byte) []byte {
	b := appendArrayLen(nil, n)
	for _, e := range elems {
		b = append(b, e...)
	}
	return b
}

func mpU(v uint64) []byte    { return appendUint(nil, v) }
func mpI(v int64) []byte     { return appendInt(nil, v) }
func mpS(s string) []byte    { return appendStr(nil, s) }
func mpB(p []byte) []byte    { return appendBin(nil, p) }
func mpRaw(b ...byte) []byte { return b }

// envFields returns the 9 fields of a valid envelope, for mutation.
func envFields() [][]byte {
	return [][]byte{mpU(1), mpS("stream"), mpU(1), mpS("type"), mpU(1), mpS(""), mpI(t0), mpRaw(mpNil), mpB([]byte{1})}
}

func envWith(i int, v []byte) []byte {
	f := envFields()
	f[i] = v
	return mpArr(len(f), f...)
}

func deepArray(depth int) []byte {
	var b []byte
	for range depth {
		b = append(b, mpFixArray|1)
	}
	return append(b, 0x00)
}

func TestDecodeRejectsInvalid(t *testing.T) {
	valid := mpArr(9, envFields()...)
	var dec Decoder
	var e event.Envelope
	if err := dec.Decode(valid, &e); err != nil {
		t.Fatalf("the valid base envelope does not decode: %v", err)
	}
	metaEntries := func(n int, k, v string) []byte {
		b := appendMapLen(nil, n)
		for i := range n {
			b = appendStr(b, fmt.Sprintf("%s%d", k, i))
			b = appendStr(b, v)
		}
		return b
	}
	tests := []struct {
		name string
		p    []byte
		is   error // a sentinel the error must match, if any
	}{
		{"empty", nil, errShort},
		{"not an array", appendMapLen(nil, 0), errType},
		{"8 fields", mpArr(8, envFields()[:8]...), nil},
		{"0 fields", mpArr(0), nil},
		{"seq 0", envWith(0, mpU(0)), errField},
		{"seq negative", envWith(0, mpI(-1)), errType},
		{"seq is a string", envWith(0, mpS("1")), errType},
		{"empty stream", envWith(1, mpS("")), errField},
		{"nil stream", envWith(1, mpRaw(mpNil)), errField},
		{"stream too long", envWith(1, mpS(strings.Repeat("s", event.MaxStreamLen+1))), errField},
		{"stream is an int", envWith(1, mpU(5)), errType},
		{"version 0", envWith(2, mpU(0)), errField},
		{"empty type", envWith(3, mpS("")), errField},
		{"type too long", envWith(3, mpS(strings.Repeat("t", event.MaxTypeLen+1))), errField},
		{"schema version 0", envWith(4, mpU(0)), errField},
		{"schema version > uint32", envWith(4, mpU(math.MaxUint32+1)), errField},
		{"id too long", envWith(5, mpS(strings.Repeat("i", event.MaxIDLen+1))), errField},
		{"time > int64", envWith(6, mpU(math.MaxInt64+1)), errType},
		{"time is a float", envWith(6, mpRaw(0xcb, 0, 0, 0, 0, 0, 0, 0, 0)), errType},
		{"meta is an array", envWith(7, mpArr(0)), errType},
		{"too many meta entries", envWith(7, metaEntries(event.MaxMetaEntries+1, "k", "v")), errField},
		{"meta key too long", envWith(7, metaEntries(1, strings.Repeat("k", event.MaxMetaKeyLen), "v")), errField},
		{"meta value too long", envWith(7, metaEntries(1, "k", strings.Repeat("v", event.MaxMetaValueLen+1))), errField},
		{"meta value is an int", envWith(7, append(appendMapLen(nil, 1), append(mpS("k"), mpU(1)...)...)), errType},
		{"data is an int", envWith(8, mpU(1)), errType},
		{"trailing byte", append(append([]byte(nil), valid...), 0x00), nil},
		{"extra field missing", mpArr(10, envFields()...), errShort},
		{"extra field 0xc1", append(mpArr(10, envFields()...), 0xc1), errType},
		{"extra field nested 33 deep", append(mpArr(10, envFields()...), deepArray(33)...), errTooDeep},
		{"extra field nested 1000 deep", append(mpArr(10, envFields()...), deepArray(1000)...), errTooDeep},
		{"array32 claims 2^32-1 fields", append(mpRaw(mpArray32, 0xff, 0xff, 0xff, 0xff), valid[1:]...), errTooLarge},
		{"array16 claims more fields than bytes", append(mpRaw(mpArray16, 0xff, 0xff), valid[1:]...), errTooLarge},
		{"stream str32 claims 4 GiB", envWith(1, mpRaw(mpStr32, 0xff, 0xff, 0xff, 0xff, 's')), errTooLarge},
		{"data bin32 claims 1 GiB", envWith(8, mpRaw(mpBin32, 0x40, 0, 0, 0, 1, 2, 3)), errTooLarge},
		{"meta map32 claims 2^32-1 entries", envWith(7, mpRaw(mpMap32, 0xff, 0xff, 0xff, 0xff)), errTooLarge},
		{"meta map16 claims 1000 entries", envWith(7, mpRaw(mpMap16, 0x03, 0xe8, 0xa1, 'k', 0xa1, 'v')), errTooLarge},
		// 6 entries need at least 12 bytes; 10 follow.
		{"meta claims more entries than byte pairs left", func() []byte {
			f := envFields()
			f[7] = mpRaw(mpFixMap | 6)
			return append(mpArr(10, f...), mpB([]byte{1, 2, 3, 4, 5})...)
		}(), errTooLarge},
		{"extra array32 claims 2^32-1 elements", append(mpArr(10, envFields()...), mpRaw(mpArray32, 0xff, 0xff, 0xff, 0xff, 1, 2)...), errTooLarge},
		{"extra map32 claims 2^32-1 entries", append(mpArr(10, envFields()...), mpRaw(mpMap32, 0xff, 0xff, 0xff, 0xff, 1, 2)...), errTooLarge},
		{"extra ext32 claims 4 GiB", append(mpArr(10, envFields()...), mpRaw(0xc9, 0xff, 0xff, 0xff, 0xff, 1, 2)...), errTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e event.Envelope
			var err error
			alloc := allocBytes(func() { err = dec.Decode(tt.p, &e) })
			if err == nil {
				t.Fatalf("Decode(% x…) = nil, want an error", tt.p[:min(len(tt.p), 24)])
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Decode: %v, want an error matching %q", err, tt.is)
			}
			if limit := uint64(4*len(tt.p) + 4096); alloc > limit {
				t.Errorf("Decode allocated %d bytes for a %d-byte payload (limit %d)", alloc, len(tt.p), limit)
			}
		})
	}
}

// Every strict prefix of a valid envelope is rejected.
func TestDecodeRejectsTruncated(t *testing.T) {
	for _, tc := range codecCases()[:40] {
		p := AppendEnvelope(nil, &tc.env)
		var dec Decoder
		for n := range len(p) {
			var e event.Envelope
			if err := dec.Decode(p[:n], &e); err == nil {
				t.Fatalf("%s: Decode of the first %d of %d bytes succeeded", tc.name, n, len(p))
			}
		}
	}
}

func TestCheckMsgpackAccepts(t *testing.T) {
	deep := any(1)
	for range 31 {
		deep = []any{deep}
	}
	values := []any{
		nil, true, false, 0, 1, -1, -33, 200, -200, 70000, -70000, int64(math.MinInt64), uint64(math.MaxUint64),
		float32(1.5), 2.25, "", "short", strings.Repeat("x", 200), strings.Repeat("y", 300), strings.Repeat("z", 70000),
		[]byte{}, []byte{1, 2, 3}, dataN(300), dataN(70000),
		[]any{}, []any{1, "a", nil}, make([]any, 20), make([]any, 70000),
		map[string]any{}, map[string]any{"a": 1, "b": []any{map[string]any{"c": nil}}},
		map[int]string{1: "a", 2: "b"},
		time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC), time.Unix(1<<40, 0),
		struct {
			A int
			B []string
			C map[string]float64
		}{1, []string{"x"}, map[string]float64{"pi": 3.14}},
		deep, []any{deep},
	}
	for i, v := range values {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckMsgpack(b); err != nil {
			t.Errorf("value %d (%T): CheckMsgpack(% x…) = %v, want nil", i, v, b[:min(len(b), 16)], err)
		}
	}
	// Hand-written encodings msgpack/v5 does not produce by default.
	raw := [][]byte{
		{0xd4, 1, 2},          // fixext 1
		{0xd5, 1, 2, 3},       // fixext 2
		{0xd6, 1, 2, 3, 4, 5}, // fixext 4
		{0xd8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // fixext 16
		{0xc7, 2, 9, 'a', 'b'},        // ext 8
		{0xc8, 0, 1, 9, 'a'},          // ext 16
		{0xc9, 0, 0, 0, 0, 9},         // ext 32, empty
		{mpArray32, 0, 0, 0, 1, 0xc0}, // array32 of one nil
		{mpMap32, 0, 0, 0, 1, 1, 2},   // map32 of one entry
		{mpStr32, 0, 0, 0, 1, 'x'},    // str32
		{mpBin32, 0, 0, 0, 0},         // bin32, empty
		{0xca, 0, 0, 0, 0},            // float32
	}
	for _, b := range raw {
		if err := CheckMsgpack(b); err != nil {
			t.Errorf("CheckMsgpack(% x) = %v, want nil", b, err)
		}
	}
	// Containers nested so that the deepest value has 32 enclosing
	// containers are accepted; 33 are rejected.
	if err := CheckMsgpack(deepArray(32)); err != nil {
		t.Errorf("32 nested arrays around a value: %v", err)
	}
	empty33 := append(bytes.Repeat([]byte{mpFixArray | 1}, 32), mpFixArray)
	if err := CheckMsgpack(empty33); err != nil {
		t.Errorf("empty array inside 32 arrays: %v", err)
	}
}

func TestCheckMsgpackRejects(t *testing.T) {
	valid, err := msgpack.Marshal(map[string]any{"a": []any{1, "two", 3.0, []byte{4}}, "b": nil})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		b    []byte
		is   error
	}{
		{"empty", nil, errShort},
		{"never-used code 0xc1", []byte{0xc1}, errType},
		{"two values", []byte{0x01, 0x02}, nil},
		{"array32 claims 2^32-1 elements", []byte{mpArray32, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0}, errTooLarge},
		{"map32 claims 2^32-1 entries", []byte{mpMap32, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0}, errTooLarge},
		{"array16 claims more elements than bytes", []byte{mpArray16, 0x00, 0x10, 1, 2, 3}, errTooLarge},
		{"str32 claims 4 GiB", []byte{mpStr32, 0xff, 0xff, 0xff, 0xff, 'a'}, errTooLarge},
		{"bin32 claims 4 GiB", []byte{mpBin32, 0xff, 0xff, 0xff, 0xff, 'a'}, errTooLarge},
		{"ext32 claims 4 GiB", []byte{0xc9, 0xff, 0xff, 0xff, 0xff, 1}, errTooLarge},
		{"fixext 16 short", []byte{0xd8, 1, 2}, errTooLarge},
		{"nested 33 deep", deepArray(33), errTooDeep},
		{"nested 100000 deep", deepArray(100000), errTooDeep},
		{"maps nested 40 deep", append(bytes.Repeat([]byte{mpFixMap | 1, 0x00}, 40), 0x00), errTooDeep},
	}
	for _, tt := range tests {
		var err error
		alloc := allocBytes(func() { err = CheckMsgpack(tt.b) })
		if err == nil {
			t.Errorf("%s: CheckMsgpack = nil, want an error", tt.name)
			continue
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%s: CheckMsgpack = %v, want an error matching %q", tt.name, err, tt.is)
		}
		// Only the error value itself may be allocated (a few hundred
		// bytes, more on a first call): nothing in proportion to the
		// lengths claimed.
		if alloc > 4096 {
			t.Errorf("%s: CheckMsgpack allocated %d bytes", tt.name, alloc)
		}
	}
	for n := range len(valid) {
		if CheckMsgpack(valid[:n]) == nil {
			t.Errorf("CheckMsgpack accepts the first %d of %d bytes of a map", n, len(valid))
		}
	}
}

// Checking a valid payload allocates nothing.
func TestCheckMsgpackDoesNotAllocate(t *testing.T) {
	b, err := msgpack.Marshal(map[string]any{"a": []any{1, "two", 3.0, []byte{4}, map[string]any{"x": nil}}})
	if err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if err := CheckMsgpack(b); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("CheckMsgpack allocates %v times", allocs)
	}
}

// TestStringSize: StringSize is what a string field of n bytes adds to
// EncodedSize, at every str header width.
func TestStringSize(t *testing.T) {
	for _, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536} {
		e := event.Envelope{Stream: strings.Repeat("s", n), Type: "t"}
		want := EncodedSize(&e) - EncodedSize(&event.Envelope{Type: "t"}) + StringSize(0)
		if got := StringSize(n); got != want {
			t.Errorf("StringSize(%d) = %d, want %d", n, got, want)
		}
	}
}

// TestBeginNextEventFrame: a frame begun from the one before it (its
// envelope but for Seq and Version, each one more, and its time) is byte
// for byte the frame BeginEventFrame writes, across every width change of
// the three fields, for data of every bin header width (EndEventFrame
// widening the previous frame's bin header), with a repeated (stamped) or
// advancing time, near and far from the epoch, an ID and meta.
func TestBeginNextEventFrame(t *testing.T) {
	var starts []uint64
	for _, edge := range []uint64{0x7f, math.MaxUint8, math.MaxUint16, math.MaxUint32} {
		starts = append(starts, edge-2)
	}
	// A time and its step per event: a repeated time (0), and times
	// crossing each width edge of a msgpack int, up and down.
	type clock struct{ start, step int64 }
	clocks := []clock{{1_700_000_000_000_000_000, 0}, {MinTime.UnixNano(), 0}, {1_700_000_000_000_000_000, 1_000_000}, {MinTime.UnixNano(), 1}}
	for _, edge := range []int64{0x7f, math.MaxUint8, math.MaxUint16, math.MaxUint32} {
		clocks = append(clocks, clock{edge - 2, 1})
	}
	for _, edge := range []int64{-32, math.MinInt8, math.MinInt16, math.MinInt32} {
		clocks = append(clocks, clock{edge + 2, -1})
	}
	data := [][]byte{{1}, bytes.Repeat([]byte{2}, 300), bytes.Repeat([]byte{3}, 70_000)}
	rewrote := 0 // frames BeginNextEventFrame built from the one before
	for _, seq := range append(starts, 1) {
		for _, ver := range append(starts, 1) {
			for _, c := range clocks {
				e := event.Envelope{Seq: seq, Stream: strings.Repeat("s", int(seq%300)), Version: ver, Type: "t", SchemaVersion: 2, ID: "id", Time: time.Unix(0, c.start), Meta: map[string]string{"k": "v"}}
				var got, want []byte
				var p PendingFrame
				for i := range 5 {
					d := data[i%len(data)]
					var q PendingFrame
					want, q = BeginEventFrame(want, &e)
					want = EndEventFrame(append(want, d...), q)
					if i == 0 {
						got, p = BeginEventFrame(got, &e)
					} else {
						pt := e.Time.UnixNano() - c.step
						if uintSize(e.Seq) == uintSize(e.Seq-1) && uintSize(e.Version) == uintSize(e.Version-1) && intSize(e.Time.UnixNano()) == intSize(pt) {
							rewrote++
						}
						got, p = BeginNextEventFrame(got, p, pt, &e)
					}
					got = EndEventFrame(append(got, d...), p)
					e.Seq++
					e.Version++
					e.Time = e.Time.Add(time.Duration(c.step))
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("seq %d, version %d, time %d step %d: frames differ from BeginEventFrame's", seq, ver, c.start, c.step)
				}
			}
		}
	}
	if rewrote == 0 {
		t.Fatal("no frame was built from the one before it")
	}
}
