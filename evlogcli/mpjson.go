package evlogcli

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/evlog/evlog/segment"
)

// msgpack → JSON, for dump's "data". The conversion is deterministic (the
// same bytes always give the same text), so dumps are byte-stable:
//
//   - maps become objects with their keys sorted (in byte order of their
//     JSON text, which is the key itself unless it needs escapes); a key
//     that is not a string is written as its JSON text ("1", "true",
//     "null");
//   - integers are exact JSON numbers; floats always carry a "." or an
//     exponent (1.0, not 1), so import can tell them from integers; NaN and
//     infinities become the strings "NaN", "+Inf", "-Inf";
//   - bin becomes a base64 string (standard encoding, padded);
//   - the timestamp extension (-1) becomes a time string like dump's;
//     other extensions become {"ext":TYPE,"data":BASE64};
//   - nil is null.
//
// Every length is checked against the bytes left before anything is
// allocated, and nesting is capped, so a hostile payload can neither
// exhaust memory nor the stack.

// maxDataDepth caps the nesting of containers in a payload.
const maxDataDepth = segment.MaxPayloadDepth

var errMsgpack = errors.New("invalid msgpack")

// appendMsgpackJSON appends the JSON form of the msgpack value in p, which
// must hold exactly one value, to dst.
func appendMsgpackJSON(dst []byte, p []byte) ([]byte, error) {
	d := mpDec{b: p}
	out, err := d.value(dst, 0)
	if err != nil {
		return dst, err
	}
	if d.off != len(d.b) {
		return dst, fmt.Errorf("%w: %d trailing bytes", errMsgpack, len(d.b)-d.off)
	}
	return out, nil
}

type mpDec struct {
	b   []byte
	off int
}

func (d *mpDec) need(n uint64) ([]byte, error) {
	if n > uint64(len(d.b)-d.off) {
		return nil, fmt.Errorf("%w: %d bytes needed at offset %d, %d left", errMsgpack, n, d.off, len(d.b)-d.off)
	}
	s := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return s, nil
}

func (d *mpDec) uint(n int) (uint64, error) {
	b, err := d.need(uint64(n))
	if err != nil {
		return 0, err
	}
	switch n {
	case 1:
		return uint64(b[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(b)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(b)), nil
	}
	return binary.BigEndian.Uint64(b), nil
}

func (d *mpDec) value(dst []byte, depth int) ([]byte, error) {
	if depth > maxDataDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", errMsgpack, maxDataDepth)
	}
	tb, err := d.need(1)
	if err != nil {
		return nil, err
	}
	t := tb[0]
	switch {
	case t <= 0x7f:
		return strconv.AppendUint(dst, uint64(t), 10), nil
	case t >= 0xe0:
		return strconv.AppendInt(dst, int64(int8(t)), 10), nil
	case t >= 0x80 && t <= 0x8f:
		return d.mapValue(dst, uint64(t&0x0f), depth)
	case t >= 0x90 && t <= 0x9f:
		return d.array(dst, uint64(t&0x0f), depth)
	case t >= 0xa0 && t <= 0xbf:
		return d.str(dst, uint64(t&0x1f))
	}
	switch t {
	case 0xc0:
		return append(dst, "null"...), nil
	case 0xc2:
		return append(dst, "false"...), nil
	case 0xc3:
		return append(dst, "true"...), nil
	case 0xc4, 0xc5, 0xc6: // bin 8/16/32
		n, err := d.uint(1 << (t - 0xc4))
		if err != nil {
			return nil, err
		}
		b, err := d.need(n)
		if err != nil {
			return nil, err
		}
		return appendBase64(dst, b), nil
	case 0xc7, 0xc8, 0xc9: // ext 8/16/32
		n, err := d.uint(1 << (t - 0xc7))
		if err != nil {
			return nil, err
		}
		return d.ext(dst, n)
	case 0xca:
		v, err := d.uint(4)
		if err != nil {
			return nil, err
		}
		return appendFloat(dst, float64(math.Float32frombits(uint32(v))), 32), nil
	case 0xcb:
		v, err := d.uint(8)
		if err != nil {
			return nil, err
		}
		return appendFloat(dst, math.Float64frombits(v), 64), nil
	case 0xcc, 0xcd, 0xce, 0xcf: // uint 8/16/32/64
		v, err := d.uint(1 << (t - 0xcc))
		if err != nil {
			return nil, err
		}
		return strconv.AppendUint(dst, v, 10), nil
	case 0xd0, 0xd1, 0xd2, 0xd3: // int 8/16/32/64
		n := 1 << (t - 0xd0)
		v, err := d.uint(n)
		if err != nil {
			return nil, err
		}
		var i int64
		switch n {
		case 1:
			i = int64(int8(v))
		case 2:
			i = int64(int16(v))
		case 4:
			i = int64(int32(v))
		default:
			i = int64(v)
		}
		return strconv.AppendInt(dst, i, 10), nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1/2/4/8/16
		return d.ext(dst, 1<<(t-0xd4))
	case 0xd9, 0xda, 0xdb: // str 8/16/32
		n, err := d.uint(1 << (t - 0xd9))
		if err != nil {
			return nil, err
		}
		return d.str(dst, n)
	case 0xdc, 0xdd: // array 16/32
		n, err := d.uint(2 << (t - 0xdc))
		if err != nil {
			return nil, err
		}
		return d.array(dst, n, depth)
	case 0xde, 0xdf: // map 16/32
		n, err := d.uint(2 << (t - 0xde))
		if err != nil {
			return nil, err
		}
		return d.mapValue(dst, n, depth)
	}
	return nil, fmt.Errorf("%w: type byte 0x%02x at offset %d", errMsgpack, t, d.off-1)
}

// rawStr reads a str value.
func (d *mpDec) rawStr() (string, error) {
	tb, err := d.need(1)
	if err != nil {
		return "", err
	}
	n := uint64(tb[0] & 0x1f)
	if t := tb[0]; t >= 0xd9 {
		if n, err = d.uint(1 << (t - 0xd9)); err != nil {
			return "", err
		}
	}
	b, err := d.need(n)
	return string(b), err
}

func (d *mpDec) str(dst []byte, n uint64) ([]byte, error) {
	b, err := d.need(n)
	if err != nil {
		return nil, err
	}
	return appendJSONString(dst, string(b)), nil
}

func (d *mpDec) array(dst []byte, n uint64, depth int) ([]byte, error) {
	if n > uint64(len(d.b)-d.off) { // every element takes at least a byte
		return nil, fmt.Errorf("%w: array of %d elements with %d bytes left", errMsgpack, n, len(d.b)-d.off)
	}
	dst = append(dst, '[')
	for i := range n {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = d.value(dst, depth+1); err != nil {
			return nil, err
		}
	}
	return append(dst, ']'), nil
}

func (d *mpDec) mapValue(dst []byte, n uint64, depth int) ([]byte, error) {
	if n > uint64(len(d.b)-d.off)/2 { // a key and a value: at least two bytes
		return nil, fmt.Errorf("%w: map of %d entries with %d bytes left", errMsgpack, n, len(d.b)-d.off)
	}
	// Entries are kept as offsets into one arena holding each key's and
	// value's JSON, so that a map of millions of tiny entries costs a few
	// bytes per entry, not a few slices. They are sorted by the key's JSON
	// text (without its quotes): the key itself, unless it needs escapes.
	type entry struct{ k, v, end int32 }
	var (
		arena   []byte
		scratch []byte
		entries = make([]entry, 0, n) // n is bounded by the bytes left
		sorted  = true
	)
	sortKey := func(e entry) []byte { return arena[e.k+1 : e.v-1] }
	for i := range n {
		if d.off >= len(d.b) {
			return nil, fmt.Errorf("%w: map ends early", errMsgpack)
		}
		e := entry{k: int32(len(arena))}
		var err error
		if t := d.b[d.off]; t >= 0xa0 && t <= 0xbf || t >= 0xd9 && t <= 0xdb {
			s, err := d.rawStr()
			if err != nil {
				return nil, err
			}
			arena = appendJSONString(arena, s)
		} else {
			if scratch, err = d.value(scratch[:0], depth+1); err != nil {
				return nil, err
			}
			arena = appendJSONString(arena, string(scratch))
		}
		e.v = int32(len(arena))
		if arena, err = d.value(arena, depth+1); err != nil {
			return nil, err
		}
		if len(arena) > math.MaxInt32/2 {
			return nil, fmt.Errorf("%w: map too large to convert", errMsgpack)
		}
		e.end = int32(len(arena))
		if i > 0 && bytes.Compare(sortKey(entries[len(entries)-1]), sortKey(e)) > 0 {
			sorted = false
		}
		entries = append(entries, e)
	}
	if !sorted {
		slices.SortStableFunc(entries, func(a, b entry) int { return bytes.Compare(sortKey(a), sortKey(b)) })
	}
	dst = append(dst, '{')
	for i, e := range entries {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, arena[e.k:e.v]...)
		dst = append(dst, ':')
		dst = append(dst, arena[e.v:e.end]...)
	}
	return append(dst, '}'), nil
}

func (d *mpDec) ext(dst []byte, n uint64) ([]byte, error) {
	tb, err := d.need(1)
	if err != nil {
		return nil, err
	}
	typ := int8(tb[0])
	b, err := d.need(n)
	if err != nil {
		return nil, err
	}
	if typ == -1 { // the timestamp extension
		var sec int64
		var nsec uint32
		switch n {
		case 4:
			sec = int64(binary.BigEndian.Uint32(b))
		case 8:
			v := binary.BigEndian.Uint64(b)
			nsec, sec = uint32(v>>34), int64(v&(1<<34-1))
		case 12:
			nsec, sec = binary.BigEndian.Uint32(b), int64(binary.BigEndian.Uint64(b[4:]))
		default:
			return nil, fmt.Errorf("%w: timestamp of %d bytes", errMsgpack, n)
		}
		if nsec >= 1e9 {
			return nil, fmt.Errorf("%w: timestamp with %d nanoseconds", errMsgpack, nsec)
		}
		t := time.Unix(sec, int64(nsec)).UTC()
		dst = append(dst, '"')
		dst = t.AppendFormat(dst, timeLayout)
		return append(dst, '"'), nil
	}
	dst = append(dst, `{"ext":`...)
	dst = strconv.AppendInt(dst, int64(typ), 10)
	dst = append(dst, `,"data":`...)
	dst = appendBase64(dst, b)
	return append(dst, '}'), nil
}

func appendBase64(dst, b []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

// appendFloat writes f so that it always reads back as a float: with a
// "." or an exponent. Non-finite values become strings.
func appendFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(dst, `"+Inf"`...)
	case math.IsInf(f, -1):
		return append(dst, `"-Inf"`...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if !strings.ContainsAny(string(dst[start:]), ".e") {
		dst = append(dst, ".0"...)
	}
	return dst
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD; nothing is HTML-escaped.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
