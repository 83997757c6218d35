package segment

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// goldenZMap returns the block directory of the intact golden compressed
// segment.
func goldenZMap(t *testing.T, comp []byte) *zmap {
	t.Helper()
	sg, err := open(&readerAtFile{ra: bytes.NewReader(comp), size: int64(len(comp))}, "c.seg")
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Close()
	if _, _, err := sg.Records(); err != nil {
		t.Fatal(err)
	}
	if len(sg.zr.z.starts) < 4 {
		t.Fatalf("the golden compressed segment has %d blocks; the test needs at least 4", len(sg.zr.z.starts))
	}
	return sg.zr.z
}

// TestSalvageCompressedWithoutBlockMap: a compressed segment whose trailer
// or block map (zmap) is damaged or missing is salvaged by finding its
// blocks without the map: every block and every frame in it carries its
// own checksum, so only the frames that touch damage are lost, not the
// whole segment.
func TestSalvageCompressedWithoutBlockMap(t *testing.T) {
	img := buildImage(goldenHeader(1), goldenSealedBatches())
	comp := goldenFiles()["compressed.seg"]
	z := goldenZMap(t, comp)
	zmapOff := z.phys[len(z.phys)-1] + int64(z.plen[len(z.plen)-1])
	nb := len(z.starts)

	// What Salvage reports, as lines: "batch FIRST..LAST" or "gap at
	// OFFSET" (a gap reaching the end of what was found: "gap at end").
	lines := func(got []salvaged, end int64) []string {
		var out []string
		for _, it := range got {
			switch {
			case it.Batch:
				out = append(out, fmt.Sprintf("batch %d..%d", it.FirstSeq, it.LastSeq))
			case it.Offset >= end:
				out = append(out, "gap at end")
			default:
				out = append(out, fmt.Sprintf("gap at %d", it.Offset))
			}
		}
		return out
	}
	intact := salvageAll(t, comp, false)
	// The batches and their logical ranges (no marks in a compacted
	// segment: a batch ends where the next starts).
	type span struct {
		first, last uint64
		from, to    int64
	}
	var batches []span
	for _, it := range intact {
		if n := len(batches); n > 0 {
			batches[n-1].to = it.Offset
		}
		batches = append(batches, span{first: it.FirstSeq, last: it.LastSeq, from: it.Offset})
	}
	batches[len(batches)-1].to = z.end
	// losing returns what Salvage reports when the record bytes from
	// logical offset from on to logical to are lost.
	losing := func(from, to int64) []string {
		var want []string
		lost := false
		for _, b := range batches {
			if b.to <= from || b.from >= to {
				want = append(want, fmt.Sprintf("batch %d..%d", b.first, b.last))
				continue
			}
			if !lost {
				lost = true
				want = append(want, fmt.Sprintf("gap at %d", b.from))
			}
		}
		return want
	}
	flip := func(data []byte, off int64) []byte {
		bad := bytes.Clone(data)
		bad[off] ^= 0xff
		return bad
	}
	mid := nb / 2
	tests := []struct {
		name    string
		corrupt []byte
		want    []string
	}{
		{"trailer damaged", flip(comp, int64(len(comp))-TrailerSize+9), lines(intact, z.end)},
		{"trailer missing", comp[:len(comp)-TrailerSize], lines(intact, z.end)},
		{"footer cut inside the zmap", comp[:zmapOff+FrameHeaderSize+4], append(lines(intact, z.end), "gap at end")},
		{"zmap damaged", flip(comp, zmapOff+FrameHeaderSize+5), lines(intact, z.end)},
		{"zmap and a block damaged", flip(flip(comp, zmapOff+FrameHeaderSize+5), z.phys[mid]+FrameHeaderSize+3),
			losing(z.starts[mid], z.starts[mid+1])},
		{"zmap and the first block damaged", flip(flip(comp, zmapOff+FrameHeaderSize+5), z.phys[0]+FrameHeaderSize+3),
			losing(z.starts[0], z.starts[1])},
		{"trailer and a block damaged", flip(flip(comp, int64(len(comp))-TrailerSize+9), z.phys[mid]+FrameHeaderSize+3),
			losing(z.starts[mid], z.starts[mid+1])},
		{"cut inside a block", comp[:z.phys[mid]+int64(z.plen[mid])/2],
			append(losing(z.starts[mid], z.end), "gap at end")},
		{"cut after a block", comp[:z.phys[mid]],
			append(losing(z.starts[mid], z.end), "gap at end")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := salvageAll(t, tc.corrupt, false)
			end := z.end
			if len(got) > 0 && !got[len(got)-1].Batch && got[len(got)-1].Length == 0 {
				end = got[len(got)-1].Offset
			}
			if d := cmp.Diff(tc.want, lines(got, end)); d != "" {
				t.Errorf("(-want +got):\n%s\ngot %+v", d, got)
			}
			for _, it := range got {
				if it.Whole {
					t.Errorf("the whole segment is one gap: %+v", it)
				}
			}
			checkSalvagedEvents(t, img, got)
		})
	}
}

// TestSalvageCompressedWithoutBlockMapHostile: finding the blocks without
// the map reads untrusted bytes: a zblock frame that checksums but whose
// zstd frame claims gigabytes, or a region of plausible frame headers, is
// damage, decoded under the block cap, without a panic and with bounded
// allocation.
func TestSalvageCompressedWithoutBlockMapHostile(t *testing.T) {
	h := goldenHeader(1)
	h.Generation, h.Flags = 1, FlagCompressed
	hb := h.Encode()
	block := func(payload []byte) []byte { return AppendFrame(nil, KindZBlock, payload) }
	comp := goldenFiles()["compressed.seg"]
	z := goldenZMap(t, comp)
	intactFirst := comp[z.phys[0] : z.phys[0]+int64(z.plen[0])]
	tests := []struct {
		name    string
		corrupt []byte // after the header
	}{
		{"block claiming 4 GiB", block(zstdFrame(4<<30, []byte("hostile")))},
		{"block claiming 2^64-1 bytes", block(zstdFrame(^uint64(0), []byte("hostile")))},
		{"block holding more than MaxZBlock", block(zstdFrame(2*MaxZBlock, bytes.Repeat([]byte{1}, 1<<16)))},
		{"empty block", block(zstdFrame(0, nil))},
		{"plausible zblock headers everywhere", bytes.Repeat([]byte{0, 0, 0, 0, 0, 0, 1, 0, byte(KindZBlock)}, 1<<14)},
		{"a valid block after garbage", append(bytes.Repeat([]byte{0xff}, 1000), intactFirst...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := append(slices.Clone(hb[:]), tc.corrupt...)
			var got []salvaged
			checkAlloc(t, 16*MaxZBlock, func() { got = salvageAll(t, data, false) })
			if len(got) == 0 || got[len(got)-1].Batch {
				t.Fatalf("no gap for a segment whose end nothing proves: %+v", got)
			}
		})
	}
}
