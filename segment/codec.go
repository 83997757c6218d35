package segment

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/evlog/evlog/event"
)

// Event frame payload: one msgpack array (see doc.go):
//
//	[seq, stream, version, type, schema_version, id, time_unix_ns, meta, data]
//	 uint str     uint     str   uint            str int           map  bin
//	                                                               |nil
//
// envelopeFields is the number of elements version 1 writes. Decoders accept
// arrays with more elements and skip the extras, so later releases can add
// trailing fields without a new format version.
const envelopeFields = 9

// MinTime and MaxTime bound the recorded time of an event: the range of
// int64 nanoseconds since the Unix epoch (years 1678 to 2262).
var (
	MinTime = time.Unix(0, math.MinInt64).UTC()
	MaxTime = time.Unix(0, math.MaxInt64).UTC()
)

// AppendEnvelope appends the msgpack encoding of e (the event frame payload)
// to dst and returns the extended slice. It does not validate e.
func AppendEnvelope(dst []byte, e *event.Envelope) []byte {
	return appendBin(appendEnvelopeHead(dst, e), e.Data)
}

// appendEnvelopeHead appends the envelope's fields up to (not including)
// its data.
func appendEnvelopeHead(dst []byte, e *event.Envelope) []byte {
	dst = appendArrayLen(dst, envelopeFields)
	dst = appendUint(dst, e.Seq)
	dst = appendStr(dst, e.Stream)
	dst = appendUint(dst, e.Version)
	dst = appendStr(dst, e.Type)
	dst = appendUint(dst, uint64(e.SchemaVersion))
	dst = appendStr(dst, e.ID)
	dst = appendInt(dst, e.Time.UnixNano())
	if e.Meta == nil {
		dst = append(dst, mpNil)
	} else {
		dst = appendMapLen(dst, len(e.Meta))
		for _, k := range sortedKeys(e.Meta) {
			dst = appendStr(dst, k)
			dst = appendStr(dst, e.Meta[k])
		}
	}
	return dst
}

// PendingFrame is an event frame begun by BeginEventFrame, waiting for its
// payload data.
type PendingFrame struct {
	start int // offset of the frame header in the buffer
	data  int // offset of the data, after a 2-byte bin8 header
}

// BeginEventFrame appends the event frame of e up to its data (e.Data is
// ignored) and returns the extended slice: the caller appends the data's
// bytes (the msgpack payload) right after, then calls EndEventFrame. The
// frame is byte-identical to AppendEventFrame's with those bytes as
// e.Data, and the data is written once, straight into dst: encoders write
// into the batch buffer with no intermediate copy.
func BeginEventFrame(dst []byte, e *event.Envelope) ([]byte, PendingFrame) {
	dst, start := beginFrame(dst)
	dst = appendEnvelopeHead(dst, e)
	// Most payloads fit a bin8 header; EndEventFrame widens it otherwise.
	dst = append(dst, mpBin8, 0)
	return dst, PendingFrame{start: start, data: len(dst)}
}

// BeginNextEventFrame is BeginEventFrame for an event e whose envelope is
// that of prev, the last frame begun in dst (and ended), but for Seq and
// Version, each one more, and its Time (prevTime: prev's, in unix ns): it
// copies prev's bytes up to its data and rewrites those fields, rather
// than encoding every field again (a batch of one stream's events of one
// type, stamped by the log or carrying their own times). The caller
// guarantees the other fields (Stream, Type, SchemaVersion, ID, Meta) are
// equal; builds with the invariants or race tag check the frame against
// BeginEventFrame's.
func BeginNextEventFrame(dst []byte, prev PendingFrame, prevTime int64, e *event.Envelope) ([]byte, PendingFrame) {
	t := e.Time.UnixNano()
	if uintSize(e.Seq) != uintSize(e.Seq-1) || uintSize(e.Version) != uintSize(e.Version-1) || intSize(t) != intSize(prevTime) {
		return BeginEventFrame(dst, e) // a field's width changes
	}
	// prev's head: after its frame header, before its 2-byte bin8 header
	// (EndEventFrame widens a bin header past it, not before).
	hs, he := prev.start+FrameHeaderSize, prev.data-2
	dst, start := beginFrame(dst)
	head := len(dst)
	dst = append(dst, dst[hs:he]...)
	// [array header, seq, stream, version, type, schema version, ID,
	// time, meta]: rewrite seq, version and time in place, at their
	// unchanged widths.
	at := head + 1
	appendUint(dst[at:at], e.Seq)
	at += uintSize(e.Seq) + strSize(len(e.Stream))
	appendUint(dst[at:at], e.Version)
	if t != prevTime {
		at += uintSize(e.Version) + strSize(len(e.Type)) + uintSize(uint64(e.SchemaVersion)) + strSize(len(e.ID))
		appendInt(dst[at:at], t)
	}
	dst = append(dst, mpBin8, 0)
	if invariants {
		if want := appendEnvelopeHead(nil, e); string(want) != string(dst[head:len(dst)-2]) {
			panic(fmt.Sprintf("segment: BeginNextEventFrame wrote %x, the envelope encodes to %x", dst[head:len(dst)-2], want))
		}
	}
	return dst, PendingFrame{start: start, data: len(dst)}
}

// EndEventFrame completes the frame p of dst, whose data is everything
// appended after BeginEventFrame returned.
func EndEventFrame(dst []byte, p PendingFrame) []byte {
	n := len(dst) - p.data
	switch {
	case n <= math.MaxUint8:
		dst[p.data-1] = byte(n)
	case n <= math.MaxUint16:
		dst = widenBin(dst, p.data, 1)
		dst[p.data-2], dst[p.data-1], dst[p.data] = mpBin16, byte(n>>8), byte(n)
	default:
		dst = widenBin(dst, p.data, 3)
		dst[p.data-2], dst[p.data-1], dst[p.data], dst[p.data+1], dst[p.data+2] = mpBin32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	}
	return endFrame(dst, p.start, KindEvent)
}

// widenBin moves the data at dst[at:] k bytes on, making room for a wider
// bin header.
func widenBin(dst []byte, at, k int) []byte {
	n := len(dst) - at
	dst = append(dst, make([]byte, k)...)
	copy(dst[at+k:], dst[at:at+n])
	return dst
}

// DataSize is the encoded size of an envelope's data field holding n
// bytes (its bin header and the bytes).
func DataSize(n int) int { return binSize(n) }

// StringSize is the encoded size of an envelope's string field (Stream,
// Type, ID) holding n bytes (its str header and the bytes): EncodedSize
// of an envelope changes by the difference of StringSize when one of
// those fields changes.
func StringSize(n int) int { return strSize(n) }

// sortedKeys returns m's keys in order, so that encoding is deterministic.
// Meta maps are small (event.MaxMetaEntries), so insertion sort is fine.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		i := len(keys)
		keys = append(keys, k)
		for ; i > 0 && keys[i-1] > k; i-- {
			keys[i] = keys[i-1]
		}
		keys[i] = k
	}
	return keys
}

// EncodedSize returns the exact size of the event frame AppendEventFrame
// produces for e.
func EncodedSize(e *event.Envelope) int {
	n := 1 + uintSize(e.Seq) + strSize(len(e.Stream)) + uintSize(e.Version) +
		strSize(len(e.Type)) + uintSize(uint64(e.SchemaVersion)) + strSize(len(e.ID)) +
		intSize(e.Time.UnixNano()) + binSize(len(e.Data))
	if e.Meta == nil {
		n++
	} else {
		n += mapLenSize(len(e.Meta))
		for k, v := range e.Meta {
			n += strSize(len(k)) + strSize(len(v))
		}
	}
	return FrameHeaderSize + n
}

func uintSize(v uint64) int {
	switch {
	case v <= 0x7f:
		return 1
	case v <= math.MaxUint8:
		return 2
	case v <= math.MaxUint16:
		return 3
	case v <= math.MaxUint32:
		return 5
	}
	return 9
}

func intSize(v int64) int {
	if v >= 0 {
		return uintSize(uint64(v))
	}
	switch {
	case v >= -32:
		return 1
	case v >= math.MinInt8:
		return 2
	case v >= math.MinInt16:
		return 3
	case v >= math.MinInt32:
		return 5
	}
	return 9
}

func strSize(n int) int {
	switch {
	case n < 32:
		return 1 + n
	case n <= math.MaxUint8:
		return 2 + n
	case n <= math.MaxUint16:
		return 3 + n
	}
	return 5 + n
}

func binSize(n int) int {
	switch {
	case n <= math.MaxUint8:
		return 2 + n
	case n <= math.MaxUint16:
		return 3 + n
	}
	return 5 + n
}

func mapLenSize(n int) int {
	switch {
	case n < 16:
		return 1
	case n <= math.MaxUint16:
		return 3
	}
	return 5
}

// Decoder decodes event frame payloads. It interns stream and type names so
// that replaying a log does not allocate a string per event for them. A
// Decoder is not safe for concurrent use; the zero value is ready to use.
type Decoder struct {
	strs map[string]string
}

// maxInterned bounds the Decoder's intern table (stream, type and meta
// key names); it is cleared when full. Logs with more distinct names than
// this decode correctly, with one string allocation per name miss.
const maxInterned = 1 << 16

func (d *Decoder) intern(b []byte) string {
	if s, ok := d.strs[string(b)]; ok { // no allocation for the lookup
		return s
	}
	if d.strs == nil || len(d.strs) >= maxInterned {
		d.strs = make(map[string]string, 64)
	}
	s := string(b)
	d.strs[s] = s
	return s
}

var errField = errors.New("invalid envelope field")

// Decode decodes an event frame payload into e. e.Data aliases payload: the
// caller must copy it before payload's buffer is reused. Every field is
// checked against the limits of package event; an error means the record is
// corrupt (the frame checksum passed, so the writer or the file is at fault).
func (d *Decoder) Decode(payload []byte, e *event.Envelope) error {
	r := mpReader{b: payload}
	n, err := r.readArrayLen()
	if err != nil {
		return fmt.Errorf("envelope: %w", err)
	}
	if n < envelopeFields {
		return fmt.Errorf("envelope: %d fields, want at least %d", n, envelopeFields)
	}
	if e.Seq, err = r.readUint(); err != nil {
		return fmt.Errorf("envelope seq: %w", err)
	}
	b, err := r.readStrBytes()
	if err != nil || len(b) == 0 || len(b) > event.MaxStreamLen {
		return fmt.Errorf("envelope stream: %w", orField(err))
	}
	e.Stream = d.intern(b)
	if e.Version, err = r.readUint(); err != nil {
		return fmt.Errorf("envelope version: %w", err)
	}
	if b, err = r.readStrBytes(); err != nil || len(b) == 0 || len(b) > event.MaxTypeLen {
		return fmt.Errorf("envelope type: %w", orField(err))
	}
	e.Type = d.intern(b)
	sv, err := r.readUint()
	if err != nil || sv == 0 || sv > math.MaxUint32 {
		return fmt.Errorf("envelope schema version: %w", orField(err))
	}
	e.SchemaVersion = uint32(sv)
	if b, err = r.readStrBytes(); err != nil || len(b) > event.MaxIDLen {
		return fmt.Errorf("envelope id: %w", orField(err))
	}
	if len(b) == 0 {
		e.ID = ""
	} else {
		e.ID = string(b)
	}
	ns, err := r.readInt()
	if err != nil {
		return fmt.Errorf("envelope time: %w", err)
	}
	e.Time = time.Unix(0, ns).UTC()
	if e.Meta, err = d.decodeMeta(&r); err != nil {
		return fmt.Errorf("envelope meta: %w", err)
	}
	if b, err = r.readBin(); err != nil {
		return fmt.Errorf("envelope data: %w", err)
	}
	if len(b) == 0 {
		e.Data = nil
	} else {
		e.Data = b
	}
	for range n - envelopeFields {
		if err := r.skip(0); err != nil {
			return fmt.Errorf("envelope extension field: %w", err)
		}
	}
	if r.remaining() != 0 {
		return fmt.Errorf("envelope: %d trailing bytes", r.remaining())
	}
	if e.Seq == 0 || e.Version == 0 {
		return fmt.Errorf("envelope: seq %d version %d: %w", e.Seq, e.Version, errField)
	}
	return nil
}

func (d *Decoder) decodeMeta(r *mpReader) (map[string]string, error) {
	n, err := r.readMapLen()
	if err != nil || n < 0 {
		return nil, err
	}
	if n > event.MaxMetaEntries {
		return nil, fmt.Errorf("%d entries: %w", n, errField)
	}
	m := make(map[string]string, n)
	for range n {
		k, err := r.readStrBytes()
		if err != nil || len(k) > event.MaxMetaKeyLen {
			return nil, orField(err)
		}
		v, err := r.readStrBytes()
		if err != nil || len(v) > event.MaxMetaValueLen {
			return nil, orField(err)
		}
		m[d.intern(k)] = string(v)
	}
	return m, nil
}

func orField(err error) error {
	if err != nil {
		return err
	}
	return errField
}
