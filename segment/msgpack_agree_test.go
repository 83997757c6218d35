package segment

import (
	"bytes"
	"testing"

	"github.com/evlog/evlog/event"
)

// FuzzCheckMsgpackAgrees: event.CheckMsgpack (for the packages that may
// not import segment: replay's snapshot states) accepts exactly what
// CheckMsgpack accepts, so the one depth limit means the same everywhere.
func FuzzCheckMsgpackAgrees(f *testing.F) {
	for _, b := range [][]byte{
		nil, {0xc1}, {0x01, 0x02}, {0xc0},
		{0xd4, 1, 2}, {0xd8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		{0xc7, 2, 9, 'a', 'b'}, {0xc8, 0, 1, 9, 'a'}, {0xc9, 0, 0, 0, 0, 9}, {0xc9, 0xff, 0xff, 0xff, 0xff, 1},
		{mpArray32, 0, 0, 0, 1, 0xc0}, {mpMap32, 0, 0, 0, 1, 1, 2}, {mpMap32, 0xff, 0xff, 0xff, 0xff, 0, 0},
		{mpStr32, 0, 0, 0, 1, 'x'}, {mpBin32, 0xff, 0xff, 0xff, 0xff, 'a'}, {0xca, 0, 0, 0, 0}, {0xcb, 0},
		deepArray(32), deepArray(33), append(bytes.Repeat([]byte{mpFixArray | 1}, 32), mpFixArray),
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		serr, eerr := CheckMsgpack(b), event.CheckMsgpack(b)
		if (serr == nil) != (eerr == nil) {
			t.Fatalf("segment.CheckMsgpack: %v; event.CheckMsgpack: %v", serr, eerr)
		}
	})
}
