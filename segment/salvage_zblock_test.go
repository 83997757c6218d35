package segment

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSalvageCompressedPastDamagedBlock: a compressed segment's blocks are
// compressed independently, so a damaged block in the middle loses only
// the batches with a frame in it: Salvage reports one gap for them and
// then the batches of the blocks after it (what evlogctl salvage
// --skip-damaged copies), not one gap to the end of the segment.
func TestSalvageCompressedPastDamagedBlock(t *testing.T) {
	img := buildImage(goldenHeader(1), goldenSealedBatches())
	comp := goldenFiles()["compressed.seg"]
	sg, err := open(&readerAtFile{ra: bytes.NewReader(comp), size: int64(len(comp))}, "c.seg")
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Close()
	if _, _, err := sg.Records(); err != nil {
		t.Fatal(err)
	}
	z := sg.zr.z
	if len(z.starts) < 4 {
		t.Fatalf("the golden compressed segment has %d blocks; the test needs at least 4", len(z.starts))
	}
	// The batches of the intact segment and their logical ranges (no
	// marks in a compacted segment: a batch ends where the next starts).
	type span struct {
		first, last uint64
		from, to    int64
	}
	var batches []span
	for _, it := range salvageAll(t, comp, false) {
		if !it.Batch {
			t.Fatalf("gap in the intact golden compressed segment: %+v", it)
		}
		if n := len(batches); n > 0 {
			batches[n-1].to = it.Offset
		}
		batches = append(batches, span{first: it.FirstSeq, last: it.LastSeq, from: it.Offset})
	}
	batches[len(batches)-1].to = z.end
	for i := 1; i < len(z.starts)-1; i++ {
		from, to := z.starts[i], z.starts[i+1]
		var want []string
		lostFrom := int64(-1)
		for _, b := range batches {
			if b.to <= from || b.from >= to {
				want = append(want, fmt.Sprintf("batch %d..%d", b.first, b.last))
				continue
			}
			if lostFrom < 0 {
				lostFrom = b.from
				want = append(want, fmt.Sprintf("gap at %d", b.from))
			}
		}
		bad := bytes.Clone(comp)
		bad[z.phys[i]+FrameHeaderSize+3] ^= 0xff
		got := salvageAll(t, bad, false)
		var have []string
		for _, it := range got {
			if it.Batch {
				have = append(have, fmt.Sprintf("batch %d..%d", it.FirstSeq, it.LastSeq))
				continue
			}
			have = append(have, fmt.Sprintf("gap at %d", it.Offset))
			if !strings.Contains(it.Reason, "zblock frame checksum mismatch") || !strings.Contains(it.Reason, fmt.Sprint(z.phys[i])) {
				t.Errorf("block %d: gap reason %q does not name the damaged zblock at file offset %d", i, it.Reason, z.phys[i])
			}
		}
		if d := cmp.Diff(want, have); d != "" {
			t.Errorf("damaged block %d (logical %d..%d): (-want +got):\n%s", i, from, to, d)
		}
		checkSalvagedEvents(t, img, got)
	}
}
