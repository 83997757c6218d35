package segment

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

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
