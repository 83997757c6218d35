package evlog

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"
)

// deepMarker returns a marker map whose unknown field "x" holds arrays
// nested depth deep.
func deepMarker(depth int) []byte {
	b := []byte{0x82, 0xa6, 's', 't', 'r', 'e', 'a', 'm', 0xa1, 's', 0xa1, 'x'}
	b = append(b, bytes.Repeat([]byte{0x91}, depth)...)
	return append(b, 0xc0)
}

// TestDecodeMarkerHostile feeds decodeMarker the markers a hostile file
// can hold in a CRC-valid record of DeletionsStream: none may crash the
// process (a decoder recursing once per nesting level overflows the stack
// long before a 64 MiB frame ends) or allocate what the bytes do not hold.
func TestDecodeMarkerHostile(t *testing.T) {
	valid, err := msgpack.Marshal(&marker{Stream: "s", Before: 7})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		want marker // zero: refused
	}{
		{"valid", valid, marker{Stream: "s", Before: 7}},
		{"unknown field, shallow", deepMarker(3), marker{Stream: "s"}},
		{"unknown field nested 64 deep", deepMarker(64), marker{}},
		{"unknown field nested 16M deep", deepMarker(16 << 20), marker{}},
		{"str32 of 4 GiB", []byte{0x81, 0xa6, 's', 't', 'r', 'e', 'a', 'm', 0xdb, 0xff, 0xff, 0xff, 0xff}, marker{}},
		{"map32 of 4G entries", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, marker{}},
		{"no stream", []byte{0x80}, marker{}},
		{"empty", nil, marker{}},
		{"trailing bytes", append(append([]byte{}, valid...), 0xc0), marker{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mk marker
			var err error
			allocs := allocBytesOf(func() { mk, err = decodeMarker(tc.data) })
			if tc.want == (marker{}) {
				if err == nil {
					t.Fatalf("decodeMarker accepted %+v", mk)
				}
			} else if err != nil || mk != tc.want {
				t.Fatalf("decodeMarker = %+v, %v; want %+v", mk, err, tc.want)
			}
			if limit := uint64(4*len(tc.data)) + 1<<20; allocs > limit {
				t.Fatalf("decoding %d bytes allocated %d", len(tc.data), allocs)
			}
		})
	}
}

// FuzzDeletionMarker decodes a deletion marker's Data: no panic or stack
// exhaustion, and what decodes names a stream and survives a round trip.
func FuzzDeletionMarker(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var mk marker
		var err error
		if allocs := allocBytesOf(func() { mk, err = decodeMarker(data) }); allocs > uint64(4*len(data))+1<<20 {
			t.Fatalf("decoding %d bytes allocated %d", len(data), allocs)
		}
		if err != nil {
			if mk != (marker{}) {
				t.Fatalf("refused marker decoded as %+v", mk)
			}
			return
		}
		if mk.Stream == "" {
			t.Fatal("accepted a marker naming no stream")
		}
		re, err := msgpack.Marshal(&mk)
		if err != nil {
			t.Fatal(err)
		}
		mk2, err := decodeMarker(re)
		if err != nil {
			t.Fatalf("re-encoded marker does not decode: %v", err)
		}
		if diff := cmp.Diff(mk, mk2, cmp.AllowUnexported(marker{})); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

// allocBytesOf returns the bytes allocated on the heap while f runs.
// Callers must not run in parallel with other tests.
func allocBytesOf(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
