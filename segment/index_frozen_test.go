package segment

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// TestFrozenIgnoresLaterAdds: a checkpoint encoded from a frozen index is
// the checkpoint of the index as it was when frozen, byte for byte, while
// its writer goes on adding to the live index on another goroutine: to
// streams it had (whose postings arrays grow, in place and moved), to
// new streams, and across sparse entries. Under -race, the encoding and
// the adds share no written memory.
func TestFrozenIgnoresLaterAdds(t *testing.T) {
	var hb [HeaderSize]byte
	h := Header{Version: FormatVersion, BaseSeq: 1}
	add := func(x *Index, from, to int) {
		for i := from; i < to; i++ {
			// Stream i%7 for the first events, new streams later: lists
			// of a few postings (slab arrays) and long ones (heap).
			name := fmt.Sprintf("s-%d", i%7)
			if i >= 3000 && i%3 == 0 {
				name = fmt.Sprintf("new-%d", i)
			}
			x.AddBatch([]EventInfo{{Seq: uint64(i + 1), Stream: name, Version: x.lastVersionOf(name) + 1, Time: int64(i), Off: HeaderSize + int64(i)*40, Len: 40}})
		}
	}
	const frozenAt, total = 2500, 9000
	want := NewIndex(1)
	add(want, 0, frozenAt)
	p := HeaderSize + int64(frozenAt)*40
	wantCk := EncodeCheckpoint(h, hb, want, p, 7)

	live := NewIndex(1)
	add(live, 0, frozenAt)
	frozen := live.Frozen()
	var got []byte
	var wg sync.WaitGroup
	wg.Go(func() { got = EncodeCheckpoint(h, hb, frozen, p, 7) })
	add(live, frozenAt, total)
	wg.Wait()
	if !bytes.Equal(got, wantCk) {
		t.Fatalf("the checkpoint of the frozen index (%d bytes) is not that of the index when frozen (%d bytes)", len(got), len(wantCk))
	}
	if again := EncodeCheckpoint(h, hb, frozen, p, 7); !bytes.Equal(again, wantCk) {
		t.Fatal("the frozen index changed after the live one grew")
	}
	if live.Count != total || frozen.Count != frozenAt {
		t.Fatalf("counts: live %d (want %d), frozen %d (want %d)", live.Count, total, frozen.Count, frozenAt)
	}
}

// lastVersionOf is the version of name's last event in x (0: none).
func (x *Index) lastVersionOf(name string) uint64 {
	sp := x.streams[name]
	if sp == nil {
		return 0
	}
	return sp.FirstVersion + uint64(len(sp.Posts)) - 1
}
