package evlogcli

// A stats state's decoder over the bytes themselves: decodeStats reads
// one snapshot per "evlogctl state", and the msgpack library's decoder
// (a call and a string per map key, field names included, through an
// io.Reader) was most of that snapshot's cost.

import (
	"fmt"

	"github.com/evlog/evlog/segment"
)

// statsIn reads msgpack values from its bytes (mpDec's: need, uint) with
// the semantics of the msgpack library's Decoder calls decodeStats used
// before (DecodeMapLen, DecodeString, DecodeUint64, Skip), so that it
// decodes what msgpack.Unmarshal into the struct decodes
// (TestDecodeStatsAsMsgpack). A state that ends inside a value is an
// error (CheckMsgpack, run first, makes it unreachable).
type statsIn struct{ mpDec }

func (r *statsIn) code() (byte, error) {
	b, err := r.need(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// mapLen is DecodeMapLen: -1 for nil.
func (r *statsIn) mapLen() (int, error) {
	c, err := r.code()
	switch {
	case err != nil:
		return 0, err
	case c == 0xc0:
		return -1, nil
	case c&0xf0 == 0x80:
		return int(c & 0x0f), nil
	case c == 0xde, c == 0xdf:
		n, err := r.uint(2 << (c - 0xde)) // map16: 2 bytes, map32: 4
		return int(n), err
	}
	return 0, fmt.Errorf("msgpack: invalid code=%x decoding map length", c)
}

// str is DecodeString without the string: the bytes of a str or bin
// value (nil for nil), aliasing r.b.
func (r *statsIn) str() ([]byte, error) {
	c, err := r.code()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c == 0xc0:
		return nil, nil
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == 0xd9, c == 0xc4: // str8, bin8
		n, err = r.uint(1)
	case c == 0xda, c == 0xc5: // str16, bin16
		n, err = r.uint(2)
	case c == 0xdb, c == 0xc6: // str32, bin32
		n, err = r.uint(4)
	default:
		return nil, fmt.Errorf("msgpack: invalid code=%x decoding string/bytes length", c)
	}
	if err != nil {
		return nil, err
	}
	return r.need(n)
}

// u64 is DecodeUint64: nil is 0, and signed values are converted as
// uint64(int64(v)).
func (r *statsIn) u64() (uint64, error) {
	c, err := r.code()
	if err != nil {
		return 0, err
	}
	if c == 0xc0 {
		return 0, nil
	}
	if c <= 0x7f || c >= 0xe0 {
		return uint64(int8(c)), nil
	}
	switch c {
	case 0xcc, 0xcd, 0xce, 0xcf: // uint8..64
		return r.uint(1 << (c - 0xcc))
	case 0xd0:
		v, err := r.uint(1)
		return uint64(int8(v)), err
	case 0xd1:
		v, err := r.uint(2)
		return uint64(int16(v)), err
	case 0xd2:
		v, err := r.uint(4)
		return uint64(int32(v)), err
	case 0xd3:
		return r.uint(8)
	}
	return 0, fmt.Errorf("msgpack: invalid code=%x decoding uint64", c)
}

// skip steps over one value.
func (r *statsIn) skip() error {
	n, err := segment.MsgpackValueLen(r.b[r.off:])
	if err != nil {
		return err
	}
	r.off += n
	return nil
}

// fields decodes a map with string keys (nil: no field), calling field
// with each key (aliasing the input: valid during the call) to decode its
// value, until an error.
func (r *statsIn) fields(field func(key []byte) error) error {
	n, err := r.mapLen()
	for i := 0; err == nil && i < n; i++ {
		var key []byte
		if key, err = r.str(); err == nil {
			err = field(key)
		}
	}
	return err
}

// strMap decodes a map with string keys (nil: a nil map), each value with
// val. size, the input's length, bounds the initial capacity (an entry
// takes at least two bytes).
func strMap[V any](r *statsIn, size int, val func(*statsIn) (V, error)) (map[string]V, error) {
	n, err := r.mapLen()
	if err != nil || n < 0 {
		return nil, err
	}
	m := make(map[string]V, min(n, size/2))
	for range n {
		k, err := r.str()
		if err != nil {
			return nil, err
		}
		v, err := val(r)
		if err != nil {
			return nil, err
		}
		m[string(k)] = v
	}
	return m, nil
}

// streamStats decodes one stream's entry (nil: the zero entry).
func (r *statsIn) streamStats() (streamStats, error) {
	var st streamStats
	err := r.fields(func(key []byte) (err error) {
		switch string(key) {
		case "count":
			st.Count, err = r.u64()
		case "version":
			st.Version, err = r.u64()
		default:
			err = r.skip()
		}
		return err
	})
	return st, err
}
