package segment

import (
	"bytes"
	"testing"
)

// FuzzIDTable decodes an ID table frame payload (what the writer's ID
// index is built from, Segment.IDTable): no panic, allocation bounded by
// the payload, and what decodes is sorted by (hash, seq), within the
// segment's seqs, no longer than its count, and re-encodes to exactly the
// payload (the encoding is canonical).
func FuzzIDTable(f *testing.F) {
	enc := func(es ...IDEntry) []byte {
		p := le.AppendUint32(nil, uint32(len(es)))
		for _, e := range es {
			p = le.AppendUint64(le.AppendUint64(p, e.Hash), e.Seq)
		}
		return p
	}
	f.Add(enc(), uint64(1), uint64(1), uint32(1))
	f.Add(enc(IDEntry{Hash: 1, Seq: 5}, IDEntry{Hash: 1, Seq: 6}, IDEntry{Hash: 9, Seq: 5}), uint64(5), uint64(7), uint32(3))
	f.Add(enc(IDEntry{Hash: 2, Seq: 5}, IDEntry{Hash: 1, Seq: 6}), uint64(5), uint64(7), uint32(3))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint64(1), uint64(1<<40), uint32(1<<31))
	f.Fuzz(func(t *testing.T, p []byte, first, last uint64, count uint32) {
		var ids []IDEntry
		var err error
		checkAlloc(t, uint64(2*len(p))+1<<10, func() { ids, err = decodeIDs(p, first, last, int(count), nil) })
		if err != nil {
			return
		}
		if len(ids) > int(count) {
			t.Fatalf("%d entries for %d events", len(ids), count)
		}
		for i, e := range ids {
			if e.Seq < first || e.Seq > last {
				t.Fatalf("entry %d: seq %d outside %d..%d", i, e.Seq, first, last)
			}
			if i > 0 && (e.Hash < ids[i-1].Hash || e.Hash == ids[i-1].Hash && e.Seq <= ids[i-1].Seq) {
				t.Fatalf("entry %d %+v after %+v", i, e, ids[i-1])
			}
		}
		if re := enc(ids...); !bytes.Equal(re, p) {
			t.Fatalf("%d entries re-encode to %d bytes, not the %d decoded", len(ids), len(re), len(p))
		}
	})
}
