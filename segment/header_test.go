package segment

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []Header{
		testHeader(1),
		testHeaderV2(1),
		{Version: 1, Flags: FlagCompressed, LogID: LogID{1, 2, 3}, BaseSeq: 1 << 40, Generation: 3, Created: time.Unix(0, 1).UTC()},
		{Version: 1, LogID: testLogID, BaseSeq: math.MaxUint64, Generation: math.MaxUint64, Created: time.Unix(0, math.MaxInt64).UTC()},
		{Version: 1, BaseSeq: 7, Created: time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC)},
		// Version 2 stores whole seconds (1970..2106) and the mark key.
		{Version: 2, Flags: FlagCompressed, LogID: LogID{1, 2, 3}, BaseSeq: 1 << 40, Generation: 3, Created: time.Unix(math.MaxUint32, 0).UTC(), MarkKey: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{Version: 2, BaseSeq: 7, Created: time.Unix(0, 0).UTC(), MarkKey: [8]byte{0xff, 7: 0xff}},
	} {
		b := h.Encode()
		got, err := DecodeHeader(b[:])
		if err != nil {
			t.Fatalf("DecodeHeader(Encode(%+v)): %v", h, err)
		}
		if diff := cmp.Diff(h, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
		// Extra bytes after the header (the rest of the file) are ignored.
		if got2, err := DecodeHeader(append(b[:], 1, 2, 3)); err != nil || !cmp.Equal(got, got2) {
			t.Errorf("DecodeHeader with trailing data: %+v, %v", got2, err)
		}
	}
	// A zero Version is written as FormatVersion.
	h := testHeader(5)
	h.Version = 0
	b := h.Encode()
	if got, err := DecodeHeader(b[:]); err != nil || got.Version != FormatVersion {
		t.Errorf("Header with Version 0: decoded version %d, %v; want %d", got.Version, err, FormatVersion)
	}
}

// Version 2 keeps whole seconds of the creation time, clamped to what its
// 32 bits hold.
func TestHeaderV2Created(t *testing.T) {
	for _, tc := range []struct{ in, want time.Time }{
		{time.Date(2024, 5, 17, 10, 29, 59, 999999999, time.UTC), time.Date(2024, 5, 17, 10, 29, 59, 0, time.UTC)},
		{time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, 0).UTC()},
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(math.MaxUint32, 0).UTC()},
	} {
		h := testHeaderV2(1)
		h.Created = tc.in
		b := h.Encode()
		got, err := DecodeHeader(b[:])
		if err != nil || !got.Created.Equal(tc.want) {
			t.Errorf("created %v: decoded %v, %v; want %v", tc.in, got.Created, err, tc.want)
		}
	}
}

// The version 2 layout: the creation seconds and the mark key take the
// place of version 1's creation nanoseconds and reserved field.
func TestHeaderLayoutV2(t *testing.T) {
	h := Header{Version: 2, LogID: LogID{0xaa, 15: 0xbb}, BaseSeq: 0x0102030405060708, Generation: 9, Created: time.Unix(0x11223344, 0).UTC(), MarkKey: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}
	b := h.Encode()
	want := []byte("evlogseg")
	want = append(want, 2, 0, 0, 0, 64, 0, 0, 0)
	want = append(want, 0xaa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xbb)
	want = append(want, 8, 7, 6, 5, 4, 3, 2, 1)
	want = append(want, 9, 0, 0, 0, 0, 0, 0, 0)
	want = append(want, 0x44, 0x33, 0x22, 0x11)
	want = append(want, 1, 2, 3, 4, 5, 6, 7, 8)
	want = le.AppendUint32(want, crc(want))
	if !bytes.Equal(b[:], want) {
		t.Errorf("Encode =\n% x\nwant\n% x", b, want)
	}
}

// The layout is fixed: check the field offsets against a hand-made header.
func TestHeaderLayout(t *testing.T) {
	h := Header{Version: 1, Flags: 0, LogID: LogID{0xaa, 15: 0xbb}, BaseSeq: 0x0102030405060708, Generation: 9, Created: time.Unix(0, 0x1122334455667788).UTC()}
	b := h.Encode()
	want := []byte("evlogseg")
	want = append(want, 1, 0, 0, 0, 64, 0, 0, 0)
	want = append(want, 0xaa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xbb)
	want = append(want, 8, 7, 6, 5, 4, 3, 2, 1)
	want = append(want, 9, 0, 0, 0, 0, 0, 0, 0)
	want = append(want, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11)
	want = append(want, 0, 0, 0, 0)
	want = le.AppendUint32(want, crc(want))
	if !bytes.Equal(b[:], want) {
		t.Errorf("Encode =\n% x\nwant\n% x", b, want)
	}
}

// reseal recomputes a mutated header's checksum, so the check under test is
// the one that fails.
func reseal(b []byte) []byte {
	le.PutUint32(b[hdrCRCOff:], crc(b[:hdrCRCOff]))
	return b
}

func TestDecodeHeaderRejects(t *testing.T) {
	good := testHeader(1).Encode()
	tests := []struct {
		name    string
		corrupt func(b []byte) []byte
	}{
		{"empty", func(b []byte) []byte { return nil }},
		{"short", func(b []byte) []byte { return b[:HeaderSize-1] }},
		{"bad magic", func(b []byte) []byte { b[0] = 'E'; return reseal(b) }},
		{"zeros", func(b []byte) []byte { return make([]byte, HeaderSize) }},
		{"0xff", func(b []byte) []byte { return bytes.Repeat([]byte{0xff}, HeaderSize) }},
		{"bad crc", func(b []byte) []byte { b[hdrCRCOff] ^= 1; return b }},
		{"flipped base seq", func(b []byte) []byte { b[hdrBaseSeqOff] ^= 1; return b }},
		{"flipped log id", func(b []byte) []byte { b[hdrLogIDOff+3] ^= 0x80; return b }},
		{"flipped reserved", func(b []byte) []byte { b[hdrReservedOff] ^= 1; return b }},
		{"version 0", func(b []byte) []byte { le.PutUint16(b[hdrVersionOff:], 0); return reseal(b) }},
		{"future version", func(b []byte) []byte { le.PutUint16(b[hdrVersionOff:], FormatVersion+1); return reseal(b) }},
		{"version 0xffff", func(b []byte) []byte { le.PutUint16(b[hdrVersionOff:], 0xffff); return reseal(b) }},
		{"unknown flag", func(b []byte) []byte { le.PutUint16(b[hdrFlagsOff:], 1<<1); return reseal(b) }},
		{"all flags", func(b []byte) []byte { le.PutUint16(b[hdrFlagsOff:], 0xffff); return reseal(b) }},
		{"header size 0", func(b []byte) []byte { le.PutUint32(b[hdrSizeOff:], 0); return reseal(b) }},
		{"header size 128", func(b []byte) []byte { le.PutUint32(b[hdrSizeOff:], 128); return reseal(b) }},
		{"base seq 0", func(b []byte) []byte { le.PutUint64(b[hdrBaseSeqOff:], 0); return reseal(b) }},
	}
	for _, tt := range tests {
		b := tt.corrupt(bytes.Clone(good[:]))
		if h, err := DecodeHeader(b); err == nil {
			t.Errorf("%s: DecodeHeader = %+v, nil; want an error", tt.name, h)
		}
	}
	// Every single-bit flip is caught.
	for i := range HeaderSize * 8 {
		b := bytes.Clone(good[:])
		b[i/8] ^= 1 << (i % 8)
		if _, err := DecodeHeader(b); err == nil {
			t.Errorf("DecodeHeader accepts the header with bit %d flipped", i)
		}
	}
}

func testTrailer() Trailer {
	return Trailer{RecordsEnd: 1000, SummaryOff: 1500, SummaryLen: 100, Count: 10, LastSeq: 10, FirstTime: t0, LastTime: t0 + 5, NewStreams: 3}
}

// trailerSize is the size of the segment testTrailer describes.
const trailerSegSize = 1500 + 100 + TrailerSize

func TestTrailerRoundTrip(t *testing.T) {
	h := testHeader(1)
	hb := h.Encode()
	for _, tr := range []Trailer{
		testTrailer(),
		{RecordsEnd: HeaderSize, SummaryOff: HeaderSize, SummaryLen: trailerSegSize - TrailerSize - HeaderSize, LastSeq: 0}, // empty segment
		{RecordsEnd: 1000, SummaryOff: 1000, SummaryLen: 600, Count: 10, LastSeq: 10, FirstTime: -5, LastTime: -5, NewStreams: 10},
	} {
		b := tr.Encode(hb)
		got, ok, err := DecodeTrailer(b[:], hb[:], h, trailerSegSize)
		if !ok || err != nil {
			t.Fatalf("DecodeTrailer(Encode(%+v)) = ok %v, %v", tr, ok, err)
		}
		if diff := cmp.Diff(tr, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}
}

func TestTrailerLayout(t *testing.T) {
	hb := testHeader(1).Encode()
	b := testTrailer().Encode(hb)
	if string(b[:8]) != "evlogidx" || le.Uint64(b[8:]) != 1000 || le.Uint64(b[16:]) != 1500 || le.Uint32(b[24:]) != 100 ||
		le.Uint32(b[28:]) != 10 || le.Uint64(b[32:]) != 10 || int64(le.Uint64(b[40:])) != t0 || int64(le.Uint64(b[48:])) != t0+5 ||
		le.Uint32(b[56:]) != 3 {
		t.Errorf("trailer layout differs from the format: % x", b)
	}
	// The CRC covers the header without its own CRC (a CRC over a message
	// followed by its CRC is a constant, which would bind nothing), then
	// the trailer's first 60 bytes.
	if got, want := le.Uint32(b[60:]), crc(append(bytes.Clone(hb[:hdrCRCOff]), b[:60]...)); got != want {
		t.Errorf("trailer CRC %08x, want CRC32C(header[:60] ‖ trailer[:60]) = %08x", got, want)
	}
}

// A trailer is bound to its segment's header: checked against another
// header it is not a trailer at all (ok=false), not corruption.
func TestTrailerBoundToHeader(t *testing.T) {
	h := testHeader(1)
	hb := h.Encode()
	b := testTrailer().Encode(hb)
	others := []Header{testHeader(1), testHeader(1), testHeader(1)}
	others[0].LogID[0] ^= 1
	others[1].Generation = 1
	others[2].Created = others[2].Created.Add(time.Nanosecond)
	for _, o := range others {
		ob := o.Encode()
		if tr, ok, err := DecodeTrailer(b[:], ob[:], o, trailerSegSize); ok || err != nil {
			t.Errorf("trailer checked against header %+v: %+v, ok %v, %v; want ok=false, nil", o, tr, ok, err)
		}
	}
}

func TestDecodeTrailerNotATrailer(t *testing.T) {
	h := testHeader(1)
	hb := h.Encode()
	good := testTrailer().Encode(hb)
	for name, b := range map[string][]byte{
		"empty":       nil,
		"short":       good[:TrailerSize-1],
		"long":        append(bytes.Clone(good[:]), 0),
		"zeros":       make([]byte, TrailerSize),
		"bad magic":   append([]byte("evlogidy"), good[8:]...),
		"flipped bit": append(bytes.Clone(good[:40]), append([]byte{good[40] ^ 4}, good[41:]...)...),
		"bad crc":     append(bytes.Clone(good[:60]), 0, 0, 0, 0),
	} {
		if tr, ok, err := DecodeTrailer(b, hb[:], h, trailerSegSize); ok || err != nil {
			t.Errorf("%s: DecodeTrailer = %+v, ok %v, %v; want ok=false, nil", name, tr, ok, err)
		}
	}
}

// A checksummed trailer with impossible fields is corruption: ok and err.
func TestDecodeTrailerImpossibleFields(t *testing.T) {
	h := testHeader(11)
	hb := h.Encode()
	base := func() Trailer {
		tr := testTrailer()
		tr.LastSeq = 20 // seqs 11..20
		return tr
	}
	tests := []struct {
		name string
		mut  func(*Trailer)
	}{
		{"records end before header", func(tr *Trailer) { tr.RecordsEnd = HeaderSize - 1 }},
		{"records end negative", func(tr *Trailer) { tr.RecordsEnd = -1 }},
		{"records end after footer", func(tr *Trailer) { tr.RecordsEnd = 1601 }},
		{"summary before records end", func(tr *Trailer) { tr.SummaryOff, tr.SummaryLen = 999, 101 }},
		{"summary ends early", func(tr *Trailer) { tr.SummaryLen = 99 }},
		{"summary ends late", func(tr *Trailer) { tr.SummaryLen = 101 }},
		{"summary offset overflows", func(tr *Trailer) { tr.SummaryOff = math.MaxInt64 }},
		{"summary offset negative", func(tr *Trailer) { tr.SummaryOff = -100 }},
		{"summary shorter than a frame header", func(tr *Trailer) { tr.RecordsEnd, tr.SummaryOff, tr.SummaryLen = 1592, 1592, 8 }},
		{"count too high", func(tr *Trailer) { tr.Count = 11 }},
		{"count too low", func(tr *Trailer) { tr.Count = 9 }},
		{"last seq before base", func(tr *Trailer) { tr.LastSeq, tr.Count = 9, 0 }},
		{"last seq wraps", func(tr *Trailer) { tr.LastSeq, tr.Count = math.MaxUint64, 0 }},
		{"first time after last", func(tr *Trailer) { tr.FirstTime = tr.LastTime + 1 }},
		{"new streams above count", func(tr *Trailer) { tr.NewStreams = 11 }},
	}
	if _, ok, err := DecodeTrailer(func() []byte { b := base().Encode(hb); return b[:] }(), hb[:], h, trailerSegSize); !ok || err != nil {
		t.Fatalf("base trailer: ok %v, %v", ok, err)
	}
	for _, tt := range tests {
		tr := base()
		tt.mut(&tr)
		b := tr.Encode(hb)
		if _, ok, err := DecodeTrailer(b[:], hb[:], h, trailerSegSize); !ok || err == nil {
			t.Errorf("%s: DecodeTrailer(%+v) = ok %v, err %v; want ok and an error", tt.name, tr, ok, err)
		}
	}
	// An empty segment (LastSeq = BaseSeq-1, no times) is fine.
	tr := Trailer{RecordsEnd: HeaderSize, SummaryOff: HeaderSize, SummaryLen: trailerSegSize - TrailerSize - HeaderSize, LastSeq: 10}
	b := tr.Encode(hb)
	if _, ok, err := DecodeTrailer(b[:], hb[:], h, trailerSegSize); !ok || err != nil {
		t.Errorf("empty segment's trailer: ok %v, %v", ok, err)
	}
}
