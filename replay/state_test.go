package replay

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/event"
)

// TestDecodeStateHostile: a snapshot's state is untrusted bytes from disk
// (checksummed, but a hostile file recomputes the checksum). Decoding it
// with the default msgpack codec must refuse what nests deeper than
// event.MaxPayloadDepth instead of overflowing the stack (msgpack/v5
// skips unknown fields recursively: the process dies, no recover), and
// must not allocate what the bytes do not hold.
func TestDecodeStateHostile(t *testing.T) {
	type state struct {
		N int `msgpack:"n"`
	}
	spec := Spec[state, event.Envelope]{}
	valid, err := msgpack.Marshal(state{N: 7})
	if err != nil {
		t.Fatal(err)
	}
	deep := func(n int) []byte {
		b := []byte{0x82, 0xa1, 'n', 0x07, 0xa1, 'x'}
		return append(append(b, bytes.Repeat([]byte{0x91}, n)...), 0xc0)
	}
	tests := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"valid", valid, true},
		{"unknown field, shallow", deep(3), true},
		{"unknown field nested 16M deep", deep(16 << 20), false},
		{"array32 of 4G elements", []byte{0x82, 0xa1, 'n', 0x07, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := DecodeState(spec, tc.data)
			if (err == nil) != tc.ok || tc.ok && st.N != 7 {
				t.Fatalf("DecodeState = %+v, %v; want ok %v", st, err, tc.ok)
			}
		})
	}
}
