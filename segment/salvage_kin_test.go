package segment

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSalvageKin: the marks of a segment whose header is damaged still
// tell which log wrote it, as long as the header's mark key is intact:
// the log's (its ID and the name's first seq and generation), another
// log's (the ID the damaged header holds), or nobody's when no mark
// verifies.
func TestSalvageKin(t *testing.T) {
	ours, theirs := LogID{1, 2, 3}, LogID{9, 8, 7}
	build := func(id LogID, marks bool) []byte {
		h := Header{Version: FormatVersion, LogID: id, BaseSeq: 40, Generation: 0, MarkKey: [8]byte{5, 5, 5, 5, 5, 5, 5, 5}}
		hb := h.Encode()
		b := hb[:]
		if marks {
			b = AppendMarkFrame(b, h, int64(len(b)), true)
		}
		for i := range 3 {
			b = AppendFrame(b, KindCommit, bytes.Repeat([]byte{byte(i)}, commitPayloadSize)) // not a batch: skipped over
		}
		if marks {
			b = AppendMarkFrame(b, h, int64(len(b)), false)
		}
		return b
	}
	flip := func(off int) func([]byte) { return func(b []byte) { b[off] ^= 1 } }
	tests := []struct {
		name    string
		id      LogID
		marks   bool
		base    uint64 // the name's
		corrupt func([]byte)
		want    Kinship
		wantID  LogID
	}{
		{name: "ours/created time", id: ours, marks: true, base: 40, corrupt: flip(hdrCreatedSecOff), want: KinOwn, wantID: ours},
		{name: "ours/log ID", id: ours, marks: true, base: 40, corrupt: flip(hdrLogIDOff + 3), want: KinOwn, wantID: ours},
		{name: "ours/base seq", id: ours, marks: true, base: 40, corrupt: flip(hdrBaseSeqOff), want: KinOwn, wantID: ours},
		{name: "ours/mark key", id: ours, marks: true, base: 40, corrupt: flip(hdrMarkKeyOff), want: KinUnknown},
		{name: "ours/another name", id: ours, marks: true, base: 41, corrupt: flip(hdrCRCOff), want: KinUnknown},
		{name: "ours/no marks", id: ours, base: 40, corrupt: flip(hdrCreatedSecOff), want: KinUnknown},
		{name: "theirs/created time", id: theirs, marks: true, base: 40, corrupt: flip(hdrCreatedSecOff), want: KinForeign, wantID: theirs},
		{name: "theirs/another name", id: theirs, marks: true, base: 77, corrupt: flip(hdrCRCOff), want: KinForeign, wantID: theirs},
		{name: "theirs/log ID", id: theirs, marks: true, base: 40, corrupt: flip(hdrLogIDOff), want: KinUnknown},
		{name: "theirs/no marks", id: theirs, base: 40, corrupt: flip(hdrCreatedSecOff), want: KinUnknown},
		{name: "zeroed", id: theirs, marks: true, base: 40, corrupt: func(b []byte) { clear(b[:HeaderSize]) }, want: KinUnknown},
		{name: "frames zeroed", id: theirs, marks: true, base: 40, corrupt: func(b []byte) { b[hdrCreatedSecOff] ^= 1; clear(b[HeaderSize:]) }, want: KinUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := build(tc.id, tc.marks)
			tc.corrupt(b)
			if _, err := DecodeHeader(b[:HeaderSize]); err == nil {
				t.Fatal("the header still decodes")
			}
			kin, id, err := SalvageKin(t.Context(), bytes.NewReader(b), int64(len(b)), ours, tc.base, 0)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]any{tc.want, tc.wantID}, []any{kin, id}); diff != "" {
				t.Errorf("SalvageKin (-want +got):\n%s", diff)
			}
		})
	}
}
