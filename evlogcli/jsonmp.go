package evlogcli

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/evlog/evlog/segment"
)

// JSON → msgpack, for import: the inverse of dump's conversion as far as
// JSON allows. Objects become maps with their keys sorted, integers the
// smallest msgpack integer that holds them, numbers with a "." or an
// exponent float64, strings str (a base64 string that was bin in the
// original stays a string), null nil.

// msgpackFromJSON encodes the JSON text raw as one msgpack value.
func msgpackFromJSON(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value")
	}
	b, err := appendMsgpack(nil, v)
	if err != nil {
		return nil, err
	}
	// The one nesting limit (segment.MaxPayloadDepth): never write a
	// payload that typed reads or dump would refuse.
	if err := segment.CheckMsgpack(b); err != nil {
		return nil, fmt.Errorf("data nests deeper than %d levels, the limit of every evlog reader: %w", segment.MaxPayloadDepth, err)
	}
	return b, nil
}

func appendMsgpack(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, 0xc0), nil
	case bool:
		if v {
			return append(dst, 0xc3), nil
		}
		return append(dst, 0xc2), nil
	case string:
		return mpAppendStr(dst, v), nil
	case json.Number:
		s := string(v)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return mpAppendInt(dst, i), nil
			}
			if u, err := strconv.ParseUint(s, 10, 64); err == nil {
				return mpAppendUint(dst, u), nil
			}
			// Never silently a rounded float: the value would change.
			return nil, fmt.Errorf("integer %.40s does not fit in 64 bits (msgpack integers have at most 64); quote it to keep it exact as a string, or add \".0\" to import a rounded float", s)
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", s, err)
		}
		dst = append(dst, 0xcb)
		return binary.BigEndian.AppendUint64(dst, math.Float64bits(f)), nil
	case []any:
		dst = mpAppendLen(dst, len(v), 0x90, 0xdc)
		for _, e := range v {
			var err error
			if dst, err = appendMsgpack(dst, e); err != nil {
				return nil, err
			}
		}
		return dst, nil
	case map[string]any:
		dst = mpAppendLen(dst, len(v), 0x80, 0xde)
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			dst = mpAppendStr(dst, k)
			var err error
			if dst, err = appendMsgpack(dst, v[k]); err != nil {
				return nil, err
			}
		}
		return dst, nil
	}
	return nil, fmt.Errorf("cannot encode %T", v)
}

// mpAppendLen appends an array (fix 0x90, 16-bit 0xdc) or map (0x80,
// 0xde) header.
func mpAppendLen(dst []byte, n int, fix, wide byte) []byte {
	switch {
	case n < 16:
		return append(dst, fix|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, wide), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, wide+1), uint32(n))
}

func mpAppendStr(dst []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xda), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
	}
	return append(dst, s...)
}

func mpAppendUint(dst []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(dst, byte(v))
	case v <= math.MaxUint8:
		return append(dst, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), v)
}

func mpAppendInt(dst []byte, v int64) []byte {
	switch {
	case v >= 0:
		return mpAppendUint(dst, uint64(v))
	case v >= -32:
		return append(dst, byte(int8(v)))
	case v >= math.MinInt8:
		return append(dst, 0xd0, byte(int8(v)))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(dst, 0xd1), uint16(int16(v)))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(int32(v)))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(v))
}
