package snapshot

import (
	"strings"
	"testing"
)

// TestDecodeRejectsNameOutsideBounds: a header whose name length is outside
// [1, MaxNameLen] is corrupt in every format version, however the rest of
// the header adds up. Format version 4 raised maxHeaderLen by the room of
// MaxUnfolded ranges; the header length alone no longer bounds the name.
func TestDecodeRejectsNameOutsideBounds(t *testing.T) {
	seq := uint64(5)
	long := strings.Repeat("n", MaxNameLen+1)
	unfolded := MakeSeqRanges(SeqRange{From: 1, To: 2})
	tests := []struct {
		name string
		v    uint16
		m    Meta
	}{
		{name: "v3, MaxNameLen+1 bytes", v: formatVersion3, m: meta(long, seq)},
		{name: "v4, MaxNameLen+1 bytes", v: formatVersion4, m: func() Meta { m := meta(long, seq); m.Unfolded = unfolded; return m }()},
		{name: "v3, empty name", v: formatVersion3, m: meta("", seq)},
		{name: "v4, empty name", v: formatVersion4, m: func() Meta { m := meta("", seq); m.Unfolded = unfolded; return m }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, _, err := encodeV(tt.v, tt.m, stateOf("cart/1", seq), DefaultLevel, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkRead(t, FormatFileName(tt.m.Name, seq), data, true)
		})
	}
}
