package segment

import (
	"testing"

	"github.com/klauspost/compress/zstd"
)

// zstdFrame returns a single-segment zstd frame declaring a content size
// of fcs and holding one raw block of data (a hostile zblock payload:
// CRC-valid, lying about its size).
func zstdFrame(fcs uint64, data []byte) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0} // magic; FHD: 8-byte FCS, single segment
	for i := range 8 {
		b = append(b, byte(fcs>>(8*i)))
	}
	n := len(data)
	b = append(b, byte(n<<3|1), byte(n>>5), byte(n>>13)) // last raw block of n bytes
	return append(b, data...)
}

// TestZBlockDecoderRefusesHugeDeclaredSizes: the decoder of compressed
// blocks refuses a frame declaring more than it may allocate (up to
// 2^64-1 bytes), without allocating for it, and decodes an honest one.
func TestZBlockDecoderRefusesHugeDeclaredSizes(t *testing.T) {
	data := []byte("hostile")
	tests := []struct {
		name string
		fcs  uint64
		ok   bool
	}{
		{"honest", uint64(len(data)), true},
		{"claims 4 GiB", 4 << 30, false},
		{"claims 2^64-1", ^uint64(0), false},
		{"claims MaxZBlock*4", 4 * MaxZBlock, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := zdecoders.Get().(*zstd.Decoder)
			defer zdecoders.Put(d)
			var out []byte
			var err error
			checkAlloc(t, 8*MaxZBlock, func() { out, err = d.DecodeAll(zstdFrame(tc.fcs, data), nil) })
			if tc.ok != (err == nil) || tc.ok && string(out) != string(data) {
				t.Fatalf("DecodeAll = %q, %v; want ok %v", out, err, tc.ok)
			}
		})
	}
}
