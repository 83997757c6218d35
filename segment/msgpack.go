package segment

import (
	"errors"
	"fmt"
	"math"

	"github.com/evlog/evlog/event"
)

// A minimal, allocation-free msgpack writer and a bounds-checked reader for
// the envelope's fixed schema. The bytes produced are standard msgpack (the
// tests decode them with github.com/vmihailenco/msgpack/v5 and feed this
// reader msgpack/v5's output), so any msgpack tool can read a record.
//
// Hand-framing keeps reflection and per-call overhead off the append and
// replay hot paths; payloads (Envelope.Data) are encoded with msgpack/v5 by
// the typed layer.

// msgpack format bytes (from the msgpack specification).
const (
	mpNil      = 0xc0
	mpBin8     = 0xc4
	mpBin16    = 0xc5
	mpBin32    = 0xc6
	mpUint8    = 0xcc
	mpUint16   = 0xcd
	mpUint32   = 0xce
	mpUint64   = 0xcf
	mpInt8     = 0xd0
	mpInt16    = 0xd1
	mpInt32    = 0xd2
	mpInt64    = 0xd3
	mpStr8     = 0xd9
	mpStr16    = 0xda
	mpStr32    = 0xdb
	mpArray16  = 0xdc
	mpArray32  = 0xdd
	mpMap16    = 0xde
	mpMap32    = 0xdf
	mpFixMap   = 0x80
	mpFixArray = 0x90
	mpFixStr   = 0xa0
)

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, mpUint8, byte(v))
	case v <= math.MaxUint16:
		return append(b, mpUint16, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, mpUint32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, mpUint64, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
		byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return appendUint(b, uint64(v))
	}
	switch {
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, mpInt8, byte(v))
	case v >= math.MinInt16:
		return append(b, mpInt16, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return append(b, mpInt32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, mpInt64, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
		byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, mpFixStr|byte(n))
	case n <= math.MaxUint8:
		b = append(b, mpStr8, byte(n))
	case n <= math.MaxUint16:
		b = append(b, mpStr16, byte(n>>8), byte(n))
	default:
		b = append(b, mpStr32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

func appendBin(b []byte, p []byte) []byte {
	n := len(p)
	switch {
	case n <= math.MaxUint8:
		b = append(b, mpBin8, byte(n))
	case n <= math.MaxUint16:
		b = append(b, mpBin16, byte(n>>8), byte(n))
	default:
		b = append(b, mpBin32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, p...)
}

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, mpFixArray|byte(n))
	case n <= math.MaxUint16:
		return append(b, mpArray16, byte(n>>8), byte(n))
	}
	return append(b, mpArray32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendMapLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, mpFixMap|byte(n))
	case n <= math.MaxUint16:
		return append(b, mpMap16, byte(n>>8), byte(n))
	}
	return append(b, mpMap32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

var (
	errShort    = errors.New("truncated msgpack value")
	errType     = errors.New("unexpected msgpack type")
	errTooDeep  = errors.New("msgpack nesting too deep")
	errTooLarge = errors.New("msgpack length exceeds the record")
)

// mpReader reads msgpack values from a byte slice. Every length is checked
// against the bytes remaining before it is used, so no input can make it
// allocate or read out of bounds.
type mpReader struct {
	b   []byte
	off int
}

func (r *mpReader) remaining() int { return len(r.b) - r.off }

func (r *mpReader) byte1() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errShort
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *mpReader) bigEndian(n int) (uint64, error) {
	if r.remaining() < n {
		return 0, errShort
	}
	var v uint64
	for _, c := range r.b[r.off : r.off+n] {
		v = v<<8 | uint64(c)
	}
	r.off += n
	return v, nil
}

func (r *mpReader) readUint() (uint64, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return uint64(c), nil
	case c == mpUint8:
		return r.bigEndian(1)
	case c == mpUint16:
		return r.bigEndian(2)
	case c == mpUint32:
		return r.bigEndian(4)
	case c == mpUint64:
		return r.bigEndian(8)
	case c >= mpInt8 && c <= mpInt64:
		// Some encoders write small non-negative numbers as signed ints.
		r.off--
		v, err := r.readInt()
		if err != nil {
			return 0, err
		}
		if v < 0 {
			return 0, errType
		}
		return uint64(v), nil
	}
	return 0, errType
}

func (r *mpReader) readInt() (int64, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c == mpInt8:
		v, err := r.bigEndian(1)
		return int64(int8(v)), err
	case c == mpInt16:
		v, err := r.bigEndian(2)
		return int64(int16(v)), err
	case c == mpInt32:
		v, err := r.bigEndian(4)
		return int64(int32(v)), err
	case c == mpInt64:
		v, err := r.bigEndian(8)
		return int64(v), err
	case c >= mpUint8 && c <= mpUint64:
		r.off--
		v, err := r.readUint()
		if err != nil {
			return 0, err
		}
		if v > math.MaxInt64 {
			return 0, errType
		}
		return int64(v), nil
	}
	return 0, errType
}

// readStrBytes returns the bytes of a str (or nil) value, aliasing r.b.
func (r *mpReader) readStrBytes() ([]byte, error) {
	c, err := r.byte1()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c&0xe0 == mpFixStr:
		n = uint64(c & 0x1f)
	case c == mpStr8, c == mpBin8:
		n, err = r.bigEndian(1)
	case c == mpStr16, c == mpBin16:
		n, err = r.bigEndian(2)
	case c == mpStr32, c == mpBin32:
		n, err = r.bigEndian(4)
	case c == mpNil:
		return nil, nil
	default:
		return nil, errType
	}
	if err != nil {
		return nil, err
	}
	return r.take(n)
}

// readBin returns the bytes of a bin (or str, or nil) value, aliasing r.b.
func (r *mpReader) readBin() ([]byte, error) { return r.readStrBytes() }

func (r *mpReader) take(n uint64) ([]byte, error) {
	if n > uint64(r.remaining()) {
		return nil, errTooLarge
	}
	p := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return p, nil
}

func (r *mpReader) readArrayLen() (int, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == mpFixArray:
		n = uint64(c & 0x0f)
	case c == mpArray16:
		n, err = r.bigEndian(2)
	case c == mpArray32:
		n, err = r.bigEndian(4)
	default:
		return 0, errType
	}
	if err != nil {
		return 0, err
	}
	if n > uint64(r.remaining()) { // every element takes at least one byte
		return 0, errTooLarge
	}
	return int(n), nil
}

// readMapLen returns the number of entries of a map value, or -1 for nil.
func (r *mpReader) readMapLen() (int, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == mpFixMap:
		n = uint64(c & 0x0f)
	case c == mpMap16:
		n, err = r.bigEndian(2)
	case c == mpMap32:
		n, err = r.bigEndian(4)
	case c == mpNil:
		return -1, nil
	default:
		return 0, errType
	}
	if err != nil {
		return 0, err
	}
	if n > uint64(r.remaining())/2 { // every entry takes at least two bytes
		return 0, errTooLarge
	}
	return int(n), nil
}

// maxSkipDepth bounds the nesting of values skipped for forward
// compatibility, so hostile input cannot exhaust the stack.
const maxSkipDepth = MaxPayloadDepth

// MaxPayloadDepth is the one nesting limit of msgpack in evlog: envelopes,
// payloads checked before a typed decode (CheckMsgpack), snapshot states
// (event.CheckMsgpack), and evlogctl's msgpack↔JSON conversions (dump
// prints, import writes) all stop at it, so nothing one of them accepts is
// refused by another.
const MaxPayloadDepth = event.MaxPayloadDepth

// skip steps over one value of any type.
func (r *mpReader) skip(depth int) error {
	if depth > maxSkipDepth {
		return errTooDeep
	}
	c, err := r.byte1()
	if err != nil {
		return err
	}
	var n uint64 // bytes to step over, or elements for containers
	switch {
	case c <= 0x7f, c >= 0xe0, c == mpNil, c == 0xc2, c == 0xc3:
		return nil
	case c&0xe0 == mpFixStr:
		_, err = r.take(uint64(c & 0x1f))
		return err
	case c&0xf0 == mpFixArray:
		return r.skipN(uint64(c&0x0f), depth)
	case c&0xf0 == mpFixMap:
		return r.skipN(2*uint64(c&0x0f), depth)
	}
	switch c {
	case mpUint8, mpInt8:
		n = 1
	case mpUint16, mpInt16:
		n = 2
	case mpUint32, mpInt32, 0xca: // float32
		n = 4
	case mpUint64, mpInt64, 0xcb: // float64
		n = 8
	case 0xd4: // fixext 1
		n = 2
	case 0xd5:
		n = 3
	case 0xd6:
		n = 5
	case 0xd7:
		n = 9
	case 0xd8:
		n = 17
	case mpStr8, mpBin8:
		if n, err = r.bigEndian(1); err != nil {
			return err
		}
	case mpStr16, mpBin16:
		if n, err = r.bigEndian(2); err != nil {
			return err
		}
	case mpStr32, mpBin32:
		if n, err = r.bigEndian(4); err != nil {
			return err
		}
	case 0xc7, 0xc8, 0xc9: // ext 8/16/32: length, then type byte
		w := 1 << (c - 0xc7) // 1, 2 or 4 length bytes
		if n, err = r.bigEndian(int(w)); err != nil {
			return err
		}
		n++
	case mpArray16, mpArray32, mpMap16, mpMap32:
		w := 2
		if c == mpArray32 || c == mpMap32 {
			w = 4
		}
		if n, err = r.bigEndian(w); err != nil {
			return err
		}
		if c == mpMap16 || c == mpMap32 {
			n *= 2
		}
		return r.skipN(n, depth)
	default: // 0xc1 is never used
		return errType
	}
	_, err = r.take(n)
	return err
}

func (r *mpReader) skipN(n uint64, depth int) error {
	if n > uint64(r.remaining()) {
		return errTooLarge
	}
	for range n {
		if err := r.skip(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

// MsgpackValueLen returns the length in bytes of the well-formed msgpack
// value b starts with (nesting at most 32 deep, containers claiming no
// more elements than there are bytes left), or an error: what a decoder
// reading a payload that passed CheckMsgpack steps over to skip a value.
func MsgpackValueLen(b []byte) (int, error) {
	r := mpReader{b: b}
	if err := r.skip(0); err != nil {
		return 0, fmt.Errorf("malformed msgpack value: %w", err)
	}
	return r.off, nil
}

// CheckMsgpack checks that b holds exactly one well-formed msgpack value
// whose containers claim no more elements than there are bytes left, and
// that nests at most 32 deep. Decoding a payload that passes cannot make a
// msgpack decoder allocate more than a small multiple of len(b).
func CheckMsgpack(b []byte) error {
	r := mpReader{b: b}
	if err := r.skip(0); err != nil {
		return fmt.Errorf("malformed msgpack payload: %w", err)
	}
	if r.remaining() != 0 {
		return fmt.Errorf("malformed msgpack payload: %d trailing bytes", r.remaining())
	}
	return nil
}
