package segment

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
)

// openImage writes a sealed segment file to mem and opens it.
func openImage(t *testing.T, mem *vfs.Mem, name string, data []byte) *Segment {
	t.Helper()
	if err := mem.WriteFile(name, data); err != nil {
		t.Fatal(err)
	}
	s, err := Open(mem, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestExtentMergeBounds: Merge of the extents of two sealed segments
// bounds, field by field, the extent of the segment compaction's writer
// makes of both (plain and compressed), and a segment's own extent is
// exactly what its footer holds.
func TestExtentMergeBounds(t *testing.T) {
	for seed := range uint64(6) {
		for _, compress := range []bool{false, true} {
			t.Run(fmt.Sprint(seed, compress), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 7))
				bs := genBatches(rng, 1, genOptions{batches: 40, maxBatch: 8, streams: 1 + int(seed)*3, maxData: 300, syncEvery: 2})
				cut := 1 + rng.IntN(len(bs)-1)
				mem := vfs.NewMem()
				var segs []*Segment
				var ext []Extent
				for i, part := range [][]batch{bs[:cut], bs[cut:]} {
					img := buildImage(testHeaderV2(part[0].events[0].Seq), part)
					x := img.index(len(part))
					file, _ := seal(x, img.h, img.data[HeaderSize:])
					s := openImage(t, mem, fmt.Sprint("in", i), file)
					e, err := s.Extent()
					if err != nil {
						t.Fatal(err)
					}
					want := Extent{Events: uint64(x.Count), Records: x.End - HeaderSize, Streams: uint64(len(x.streams))}
					for name, sp := range x.streams {
						want.Postings = max(want.Postings, int64(postingsSize(sp.Posts)))
						want.NameLen = max(want.NameLen, len(name))
					}
					if e != want {
						t.Fatalf("extent of input %d: %+v, want %+v", i, e, want)
					}
					segs, ext = append(segs, s), append(ext, e)
				}
				h := testHeaderV2(1)
				h.Generation = 1
				var out bytes.Buffer
				w := NewSealedWriter(&out, h, compress)
				for _, s := range segs {
					ra, end, _ := s.Records()
					res, err := Scan(ra, s.Header, end, ScanOptions{Strict: true, CollectInfos: true})
					if err != nil {
						t.Fatal(err)
					}
					if err := w.AppendRecords(bytes.NewReader(mustRead(t, ra, HeaderSize, end)), res.Infos, make([]byte, 4096)); err != nil {
						t.Fatal(err)
					}
				}
				if err := w.Seal(); err != nil {
					t.Fatal(err)
				}
				merged := openImage(t, mem, "out", out.Bytes())
				if _, err := Verify(merged, math.MinInt64); err != nil {
					t.Fatal(err)
				}
				got, err := merged.Extent()
				if err != nil {
					t.Fatal(err)
				}
				b := ext[0].Merge(ext[1])
				if got.Events != b.Events || got.Records > b.Records || got.Streams > b.Streams || got.Postings > b.Postings || got.NameLen != b.NameLen {
					t.Fatalf("merged extent %+v is not within Merge's bound %+v", got, b)
				}
				if err := b.Fits(compress); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func mustRead(t *testing.T, ra interface {
	ReadAt([]byte, int64) (int, error)
}, from, to int64) []byte {
	t.Helper()
	p := make([]byte, to-from)
	if _, err := ra.ReadAt(p, from); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExtentFits: each bound of the format, at its limit and one past it.
func TestExtentFits(t *testing.T) {
	const limit = MaxFramePayload
	// The summary of n streams of one event each with 1-byte names.
	summary := func(n int64) int64 {
		return 4 + sparseSize*ceilDiv(n, SparseInterval) + 4 + blkSize*ceilDiv(n, blockStride) + 8 + int64(bloomBytes(int(n))) + sumIDsSize + 4 + (nbFixedSize+1)*ceilDiv(n, nameStride)
	}
	many := int64(20_000_000)
	for summary(many) > limit {
		many -= 1000
	}
	for summary(many+1) <= limit {
		many++
	}
	zblocks := int64(limit-4) / zmEntrySize
	tests := []struct {
		name       string
		e          Extent
		compressed bool
		ok         bool
	}{
		{"postings at the limit", Extent{Events: 1, Streams: 1, Postings: limit, NameLen: 1}, false, true},
		{"postings past the limit", Extent{Events: 1, Streams: 1, Postings: limit + 1, NameLen: 1}, false, false},
		{"events past 2^32-1", Extent{Events: math.MaxUint32 + 1, Streams: 1, NameLen: 1}, false, false},
		{"summary at the limit", Extent{Events: uint64(many), Streams: uint64(many), NameLen: 1}, false, true},
		{"summary past the limit", Extent{Events: uint64(many + 1), Streams: uint64(many + 1), NameLen: 1}, false, false},
		{"zmap at the limit", Extent{Events: 1, Streams: 1, NameLen: 1, Records: zblocks * ZBlockSize}, true, true},
		{"zmap past the limit", Extent{Events: 1, Streams: 1, NameLen: 1, Records: zblocks*ZBlockSize + 1}, true, false},
		{"plain records have no zmap", Extent{Events: 1, Streams: 1, NameLen: 1, Records: zblocks*ZBlockSize + 1}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.e.Fits(tc.compressed)
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Fits(%+v, %v) = %v, want ok=%v (or ErrTooLarge)", tc.e, tc.compressed, err, tc.ok)
			}
		})
	}
}

// TestOversizedFooterFrameNamed: a segment written before the bounds (by
// an older compaction) whose postings frame, or zmap, is past the frame
// limit: Verify names the file and the frame's offset, and Salvage still
// copies every event (it reads the records, not the footer). The limit is
// lowered to 256 bytes to build such a segment from a few hundred events.
func TestOversizedFooterFrameNamed(t *testing.T) {
	const events = 300 // one stream: ~600 bytes of postings
	var bs []batch
	for i := range events / 10 {
		var b batch
		for j := range 10 {
			n := uint64(i*10 + j + 1)
			b.events = append(b.events, event.Envelope{Seq: n, Stream: "s", Version: n, Type: "e", SchemaVersion: 1, Time: time.Unix(0, t0).UTC()})
		}
		bs = append(bs, b)
	}
	img := buildImage(testHeaderV2(1), bs)
	plain, _ := seal(img.index(len(bs)), img.h, img.data[HeaderSize:])
	h := testHeaderV2(1)
	h.Generation = 1
	var out bytes.Buffer
	w := NewSealedWriter(&out, h, true)
	w.zblockSize = 64 // many zblocks: a zmap of ~1.5 KiB
	res, err := Scan(bytes.NewReader(plain), img.h, img.index(len(bs)).End, ScanOptions{Strict: true, CollectInfos: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AppendRecords(bytes.NewReader(img.data[HeaderSize:]), res.Infos, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	compressed := out.Bytes()

	for _, tc := range []struct {
		name string
		data []byte
		// off returns the offset of the oversized frame.
		off func(s *Segment) int64
	}{
		{"postings", plain, func(s *Segment) int64 {
			e, ok, err := s.Lookup("s")
			if err != nil || !ok {
				t.Fatalf("Lookup: %v, %v", ok, err)
			}
			return e.PostOff
		}},
		{"zmap", compressed, func(s *Segment) int64 { return s.Trailer.RecordsEnd }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			s := openImage(t, mem, "x.seg", tc.data)
			off := tc.off(s)
			old := footerFrameLimit.Swap(256)
			t.Cleanup(func() { footerFrameLimit.Store(old) })
			_, err := Verify(s, math.MinInt64)
			ce, ok := errors.AsType[*CorruptError](err)
			if !ok || ce.File != "x.seg" || ce.Offset != off {
				t.Fatalf("Verify: %v, want a *CorruptError naming x.seg at offset %d", err, off)
			}
			n := 0
			err = Salvage(t.Context(), bytes.NewReader(tc.data), int64(len(tc.data)), SalvageOptions{
				Name:  "x.seg",
				Batch: func(b *Batch) error { n += len(b.Events); return nil },
				Gap:   func(g *Gap) error { return fmt.Errorf("gap at %d: %s", g.Offset, g.Reason) },
			})
			if err != nil || n != events {
				t.Fatalf("Salvage: %d events, %v; want %d", n, err, events)
			}
		})
	}
}

// TestSealRefusesPastBound: SealedWriter.Seal never seals a segment
// readers would refuse. With the frame limit lowered below one stream's
// postings, Seal fails with ErrTooLarge and writes no footer; at exactly
// the postings' size it seals a segment that verifies.
func TestSealRefusesPastBound(t *testing.T) {
	var bs []batch
	for i := range 30 {
		var b batch
		for j := range 10 {
			n := uint64(i*10 + j + 1)
			b.events = append(b.events, event.Envelope{Seq: n, Stream: "s", Version: n, Type: "e", SchemaVersion: 1, Time: time.Unix(0, t0).UTC()})
		}
		bs = append(bs, b)
	}
	img := buildImage(testHeaderV2(1), bs)
	x := img.index(len(bs))
	plain, _ := seal(x, img.h, img.data[HeaderSize:])
	postings := int64(postingsSize(x.streams["s"].Posts))
	res, err := Scan(bytes.NewReader(plain), img.h, x.End, ScanOptions{Strict: true, CollectInfos: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, compress := range []bool{false, true} {
		for _, tc := range []struct {
			limit int64
			ok    bool
		}{{postings, true}, {postings - 1, false}} {
			t.Run(fmt.Sprintf("compress=%v/limit=%d", compress, tc.limit), func(t *testing.T) {
				old := footerFrameLimit.Swap(tc.limit)
				t.Cleanup(func() { footerFrameLimit.Store(old) })
				h := testHeaderV2(1)
				h.Generation = 1
				var out bytes.Buffer
				w := NewSealedWriter(&out, h, compress)
				if err := w.AppendRecords(bytes.NewReader(img.data[HeaderSize:]), res.Infos, make([]byte, 4096)); err != nil {
					t.Fatal(err)
				}
				before := out.Len()
				err := w.Seal()
				if !tc.ok {
					if !errors.Is(err, ErrTooLarge) {
						t.Fatalf("Seal past the bound: %v, want ErrTooLarge", err)
					}
					if out.Len() != before {
						t.Fatalf("Seal past the bound wrote %d bytes", out.Len()-before)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				s := openImage(t, vfs.NewMem(), "out.seg", out.Bytes())
				if _, err := Verify(s, math.MinInt64); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
