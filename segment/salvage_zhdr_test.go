package segment

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSalvageDamagedHeader: when a segment's header does not verify,
// Salvage cannot learn from it whether the segment is compressed; it
// decides from the file itself (a valid compressed block at the records'
// start, or a valid block map placing blocks there) and reads a
// compressed one through its blocks, so no event of intact blocks is
// lost. The damaged header is always reported as a gap at offset 0; an
// uncompressed segment is read on frame by frame as before; and when the
// file proves neither, the records are one gap whose reason says why.
func TestSalvageDamagedHeader(t *testing.T) {
	img := buildImage(goldenHeader(1), goldenSealedBatches())
	golden := goldenFiles()
	comp, plain := golden["compressed.seg"], golden["sealed.seg"]
	z := goldenZMap(t, comp)
	zmapOff := z.phys[len(z.phys)-1] + int64(z.plen[len(z.plen)-1])
	flip := func(data []byte, offs ...int64) []byte {
		bad := bytes.Clone(data)
		for _, off := range offs {
			bad[off] ^= 0xff
		}
		return bad
	}
	trailerField := func(data []byte) int64 { return int64(len(data)) - TrailerSize + trlRecordsEndOff + 1 }
	every := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}
	tests := []struct {
		name    string
		corrupt []byte
		// seqs are the events Salvage must return (every one of the
		// intact blocks).
		seqs []uint64
		// lost: gaps beyond the header's are expected (damaged blocks).
		lost bool
		// whole: the records are one gap whose reason starts with it.
		whole string
	}{
		{"compressed: flag byte", flip(comp, hdrFlagsOff), every, false, ""},
		{"compressed: header checksum", flip(comp, hdrCRCOff+2), every, false, ""},
		{"compressed: magic", flip(comp, hdrMagicOff+3), every, false, ""},
		{"compressed: version", flip(comp, hdrVersionOff), every, false, ""},
		{"compressed: log ID", flip(comp, hdrLogIDOff+7), every, false, ""},
		{"compressed: base seq", flip(comp, hdrBaseSeqOff), every, false, ""},
		{"compressed: header zeroed", append(make([]byte, HeaderSize), comp[HeaderSize:]...), every, false, ""},
		{"compressed: header and trailer", flip(comp, hdrBaseSeqOff, trailerField(comp)), every, false, ""},
		{"compressed: header and zmap", flip(comp, hdrFlagsOff, zmapOff+FrameHeaderSize+5), every, false, ""},
		{"compressed: header, trailer missing", flip(comp[:len(comp)-TrailerSize], hdrCRCOff), every, false, ""},
		// The first block is damaged: the block map behind the trailer's
		// records end proves the segment compressed.
		{"compressed: header and first block", flip(comp, hdrFlagsOff, z.phys[0]+FrameHeaderSize+3), nil, true, ""},
		// The trailer is damaged too: the block map where the blocks
		// found end proves it.
		{"compressed: header, first block and trailer", flip(comp, hdrFlagsOff, z.phys[0]+FrameHeaderSize+3, trailerField(comp)), nil, true, ""},
		// Nothing at the records' start and no block map: ambiguous.
		{"compressed: header, first block and zmap", flip(comp, hdrFlagsOff, z.phys[0]+FrameHeaderSize+3, zmapOff+FrameHeaderSize+5),
			nil, true, "cannot tell whether the segment is compressed"},
		{"uncompressed: flag byte", flip(plain, hdrFlagsOff), every, false, ""},
		{"uncompressed: header checksum", flip(plain, hdrCRCOff), every, false, ""},
		{"uncompressed: magic", flip(plain, hdrMagicOff), every, false, ""},
		{"uncompressed: base seq", flip(plain, hdrBaseSeqOff+1), every, false, ""},
		{"uncompressed: header and trailer", flip(plain, hdrLogIDOff, trailerField(plain)), every, false, ""},
		// No valid block anywhere: read on frame by frame, as before.
		{"uncompressed: header and first frame", flip(plain, hdrLogIDOff, HeaderSize+FrameHeaderSize+2), nil, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := salvageAll(t, tc.corrupt, false)
			if len(got) == 0 || got[0].Batch || got[0].Offset != 0 || got[0].Length != HeaderSize || !strings.HasPrefix(got[0].Reason, "bad header: ") {
				t.Fatalf("the damaged header is not reported as a gap at offset 0: %+v", got)
			}
			var seqs []uint64
			var gaps []salvaged
			for _, it := range got[1:] {
				if !it.Batch {
					gaps = append(gaps, it)
					continue
				}
				for _, e := range it.events {
					seqs = append(seqs, e.Seq)
				}
			}
			checkSalvagedEvents(t, img, got[1:])
			switch {
			case tc.whole != "":
				if len(seqs) > 0 || len(gaps) != 1 || gaps[0].Offset != HeaderSize || !strings.Contains(gaps[0].Reason, tc.whole) {
					t.Fatalf("want the records as one gap saying %q, got %+v", tc.whole, got)
				}
			case tc.lost:
				if len(gaps) == 0 || len(seqs) == 0 || !slices.Equal(seqs, every[len(every)-len(seqs):]) {
					t.Fatalf("want a gap for the damaged block, then the events of the blocks after it; got %+v", got)
				}
			default:
				if d := cmp.Diff(tc.seqs, seqs); d != "" || len(gaps) > 0 {
					t.Fatalf("events (-want +got):\n%s\nall: %s", d, fmt.Sprintf("%+v", got))
				}
			}
		})
	}
}

// TestSalvageDamagedHeaderHostile: deciding whether a segment with a
// damaged header is compressed reads untrusted bytes: a block at offset 64
// whose zstd frame claims gigabytes, or plausible block headers
// everywhere, is decided under the block cap, with bounded allocation and
// no panic, and the header is still reported.
func TestSalvageDamagedHeaderHostile(t *testing.T) {
	hb := goldenHeader(1).Encode()
	hb[hdrCRCOff] ^= 0xff
	block := func(payload []byte) []byte { return AppendFrame(nil, KindZBlock, payload) }
	tests := []struct {
		name    string
		corrupt []byte // after the header
	}{
		{"block claiming 4 GiB", block(zstdFrame(4<<30, []byte("hostile")))},
		{"block holding more than MaxZBlock", block(zstdFrame(2*MaxZBlock, bytes.Repeat([]byte{1}, 1<<16)))},
		{"plausible zblock headers everywhere", bytes.Repeat([]byte{0, 0, 0, 0, 0, 0, 1, 0, byte(KindZBlock)}, 1<<14)},
		{"a trailer pointing at garbage", append(bytes.Repeat([]byte{0x7f}, 300), func() []byte {
			tr := Trailer{RecordsEnd: HeaderSize + 10, SummaryOff: HeaderSize + 300, SummaryLen: 0}.Encode(hb)
			return tr[:]
		}()...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := append(slices.Clone(hb[:]), tc.corrupt...)
			var got []salvaged
			checkAlloc(t, 16*MaxZBlock, func() { got = salvageAll(t, data, false) })
			if len(got) == 0 || got[0].Batch || got[0].Offset != 0 || got[0].Length != HeaderSize {
				t.Fatalf("the damaged header is not reported: %+v", got)
			}
			for _, it := range got {
				if it.Batch {
					t.Fatalf("a batch salvaged from hostile bytes: %+v", got)
				}
			}
		})
	}
}
