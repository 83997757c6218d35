package event

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxPayloadDepth is the one nesting limit of msgpack in evlog: envelopes,
// payloads and snapshot states checked before a reflective decode
// (CheckMsgpack here and segment.CheckMsgpack), and evlogctl's
// msgpack↔JSON conversions all stop at it, so nothing one of them accepts
// is refused by another.
const MaxPayloadDepth = 32

var (
	errMsgpackShort = errors.New("truncated")
	errMsgpackDeep  = errors.New("nesting too deep")
	errMsgpackLarge = errors.New("a container claims more elements than there are bytes")
	errMsgpackType  = errors.New("unknown type byte 0xc1")
)

// CheckMsgpack checks that b holds exactly one well-formed msgpack value
// nested at most MaxPayloadDepth deep, whose containers claim no more
// elements than there are bytes left. Decoding bytes that pass with
// github.com/vmihailenco/msgpack/v5 (which recurses once per nesting level
// and has no depth limit of its own) cannot exhaust the stack, nor make it
// allocate more than a small multiple of len(b). It is for the packages
// that may not import segment (replay); segment.CheckMsgpack accepts the
// same values.
func CheckMsgpack(b []byte) error {
	c := mpCheck{b: b}
	if err := c.value(0); err != nil {
		return fmt.Errorf("malformed msgpack at byte %d: %w", c.off, err)
	}
	if n := len(b) - c.off; n != 0 {
		return fmt.Errorf("malformed msgpack: %d trailing bytes", n)
	}
	return nil
}

type mpCheck struct {
	b   []byte
	off int
}

// take steps over n bytes.
func (c *mpCheck) take(n uint64) error {
	if n > uint64(len(c.b)-c.off) {
		return errMsgpackShort
	}
	c.off += int(n)
	return nil
}

// uint reads a big-endian length of w bytes.
func (c *mpCheck) uint(w int) (uint64, error) {
	if w > len(c.b)-c.off {
		return 0, errMsgpackShort
	}
	p := c.b[c.off : c.off+w]
	c.off += w
	switch w {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	default:
		return uint64(binary.BigEndian.Uint32(p)), nil
	}
}

// value steps over one value at nesting depth.
func (c *mpCheck) value(depth int) error {
	if depth > MaxPayloadDepth {
		return errMsgpackDeep
	}
	if c.off >= len(c.b) {
		return errMsgpackShort
	}
	t := c.b[c.off]
	c.off++
	switch {
	case t <= 0x7f, t >= 0xe0, t == 0xc0, t == 0xc2, t == 0xc3: // fixints, nil, bools
		return nil
	case t&0xe0 == 0xa0: // fixstr
		return c.take(uint64(t & 0x1f))
	case t&0xf0 == 0x90: // fixarray
		return c.elems(uint64(t&0x0f), depth)
	case t&0xf0 == 0x80: // fixmap
		return c.elems(2*uint64(t&0x0f), depth)
	}
	switch t {
	case 0xcc, 0xd0: // uint8, int8
		return c.take(1)
	case 0xcd, 0xd1: // 16-bit ints
		return c.take(2)
	case 0xce, 0xd2, 0xca: // 32-bit ints, float32
		return c.take(4)
	case 0xcf, 0xd3, 0xcb: // 64-bit ints, float64
		return c.take(8)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type byte and data
		return c.take(1 + 1<<(t-0xd4))
	case 0xd9, 0xc4: // str8, bin8
		return c.sized(1, 0)
	case 0xda, 0xc5: // str16, bin16
		return c.sized(2, 0)
	case 0xdb, 0xc6: // str32, bin32
		return c.sized(4, 0)
	case 0xc7, 0xc8, 0xc9: // ext 8, 16, 32: length, type byte, data
		return c.sized(1<<(t-0xc7), 1)
	case 0xdc, 0xdd, 0xde, 0xdf: // array16, array32, map16, map32
		w := 2
		if t == 0xdd || t == 0xdf {
			w = 4
		}
		n, err := c.uint(w)
		if err != nil {
			return err
		}
		if t >= 0xde {
			n *= 2
		}
		return c.elems(n, depth)
	default: // 0xc1 is never used
		return errMsgpackType
	}
}

// sized steps over a length of w bytes, extra bytes, then length bytes.
func (c *mpCheck) sized(w int, extra uint64) error {
	n, err := c.uint(w)
	if err != nil {
		return err
	}
	return c.take(n + extra)
}

// elems steps over n values one level below depth.
func (c *mpCheck) elems(n uint64, depth int) error {
	if n > uint64(len(c.b)-c.off) {
		return errMsgpackLarge
	}
	for range n {
		if err := c.value(depth + 1); err != nil {
			return err
		}
	}
	return nil
}
