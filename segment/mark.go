package segment

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

// Mark frame (version 2; see doc.go):
//
//	+-----------+-----------+---------+==================+=================+
//	| CRC32C u32| length 16 | kind 8  | durable end u64* | tag [8]byte     |
//	+-----------+-----------+---------+==================+=================+
//	 0           4           8         9                  17                25
//
// (*) The top bit of the durable end field is the strict flag: set by a
// writer that acknowledges appends only once durable (SyncAlways), so that
// readers in other processes serve only up to the mark's durable end;
// clear when the writer acknowledges appends as soon as they are written
// (readers then serve every committed batch). The writer writes a mark
// when it creates a segment and when it opens one for appending, so the
// newest mark always carries the flag of the writer appending now.
//
// The writer appends a mark right after each fsync of the newest segment
// (Sync, the SyncInterval tick, every group under SyncAlways, Close, and
// the fsync that opens a segment for appending): it records on disk that
// every byte before its durable end — the mark's own offset — had been
// made durable. The mark itself becomes durable with the next fsync.
//
// The tag is the first 8 bytes of HMAC-SHA256 keyed by the header's mark
// key over the log ID, base seq, generation, the mark's offset and its
// durable end (all little-endian). The key is random and stored only in
// the header, so event payloads cannot contain a valid mark; the offset
// binds a mark to its place.

// MarkFrameSize is the size of a mark frame.
const MarkFrameSize = FrameHeaderSize + markPayloadSize

// NewMarkKey returns a random mark key for a new segment header.
func NewMarkKey() ([8]byte, error) {
	var k [8]byte
	_, err := rand.Read(k[:])
	return k, err
}

// markTag computes the tag of a mark at offset at whose durable end field
// (flag included) is field, in a segment with header h.
func markTag(h Header, at int64, field uint64) [markTagSize]byte {
	m := hmac.New(sha256.New, h.MarkKey[:])
	var b [16 + 8 + 8 + 8 + 8]byte
	copy(b[:16], h.LogID[:])
	le.PutUint64(b[16:], h.BaseSeq)
	le.PutUint64(b[24:], h.Generation)
	le.PutUint64(b[32:], uint64(at))
	le.PutUint64(b[40:], field)
	m.Write(b[:])
	var tag [markTagSize]byte
	copy(tag[:], m.Sum(nil))
	return tag
}

// AppendMarkFrame appends to dst the mark frame that records that the
// segment with header h was fsynced up to at, the offset where the mark
// will be written; strict is the writer's promise that it acknowledges
// appends only once durable (see the strict flag above).
func AppendMarkFrame(dst []byte, h Header, at int64, strict bool) []byte {
	dst, start := beginFrame(dst)
	var p [markPayloadSize]byte
	field := uint64(at)
	if strict {
		field |= markStrictBit
	}
	le.PutUint64(p[markDurableEndOff:], field)
	tag := markTag(h, at, field)
	copy(p[markTagOff:], tag[:])
	dst = append(dst, p[:]...)
	return endFrame(dst, start, KindMark)
}

// DecodeMark decodes the payload of a mark frame at offset at and returns
// its durable end. It checks the payload's shape, not its tag (see
// VerifyMark): a mark reached by walking the frames from the header is
// genuine, as every frame so reached is.
func DecodeMark(p []byte, at int64) (int64, error) {
	if len(p) != markPayloadSize {
		return 0, fmt.Errorf("mark payload is %d bytes, want %d", len(p), markPayloadSize)
	}
	d := int64(le.Uint64(p[markDurableEndOff:]) &^ markStrictBit)
	if d < HeaderSize || d > at {
		return 0, fmt.Errorf("mark at %d claims durable end %d", at, d)
	}
	return d, nil
}

// VerifyMark reports whether p, the payload of a frame found at offset at
// of a segment with header h, is a mark this segment's writer wrote there
// (its tag matches), and returns its durable end. Version 1 segments have
// no marks.
func VerifyMark(h Header, p []byte, at int64) (int64, bool) {
	if h.Version < 2 {
		return 0, false
	}
	d, err := DecodeMark(p, at)
	if err != nil {
		return 0, false
	}
	want := markTag(h, at, le.Uint64(p[markDurableEndOff:]))
	return d, hmac.Equal(p[markTagOff:markTagOff+markTagSize], want[:])
}

// MarkStrict reports the strict flag of a mark payload p (see above).
func MarkStrict(p []byte) bool {
	return len(p) == markPayloadSize && le.Uint64(p[markDurableEndOff:])&markStrictBit != 0
}
