package evlogcli

import (
	"bytes"
	"testing"
)

// TestDecodeRawMarkerHostile: salvage and dump fold the deletion markers
// of damaged logs frame by frame; a CRC-valid marker whose Data nests
// msgpack millions deep must be skipped as foreign, not crash the process
// with a stack overflow (msgpack/v5 skips unknown fields recursively).
func TestDecodeRawMarkerHostile(t *testing.T) {
	head := []byte{0x82, 0xa6, 's', 't', 'r', 'e', 'a', 'm', 0xa1, 's', 0xa1, 'x'}
	deep := func(n int) []byte {
		return append(append(append([]byte{}, head...), bytes.Repeat([]byte{0x91}, n)...), 0xc0)
	}
	tests := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"valid", []byte{0x82, 0xa6, 's', 't', 'r', 'e', 'a', 'm', 0xa1, 's', 0xa6, 'b', 'e', 'f', 'o', 'r', 'e', 0x07}, true},
		{"unknown field, shallow", deep(3), true},
		{"unknown field nested 16M deep", deep(16 << 20), false},
		{"str32 of 4 GiB", []byte{0x81, 0xa6, 's', 't', 'r', 'e', 'a', 'm', 0xdb, 0xff, 0xff, 0xff, 0xff}, false},
		{"no stream", []byte{0x80}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mk, ok := decodeRawMarker(tc.data)
			if ok != tc.ok || ok && mk.Stream != "s" {
				t.Fatalf("decodeRawMarker = %+v, %v; want ok %v", mk, ok, tc.ok)
			}
		})
	}
}
