package segment

import (
	"errors"
	"fmt"
	"io"

	"github.com/evlog/evlog/event"
)

// Frame layout (see doc.go):
//
//	+-----------+-----------+--------+=====================+
//	| CRC32C u32| length u32| kind u8| payload (length B)  |
//	+-----------+-----------+--------+=====================+
//	 0           4           8        9
//	            \____________ CRC covers this ____________/

// beginFrame reserves a frame header at the end of dst; endFrame fills it in
// once the payload has been appended after it.
func beginFrame(dst []byte) ([]byte, int) {
	start := len(dst)
	return append(dst, make([]byte, FrameHeaderSize)...), start
}

func endFrame(dst []byte, start int, k Kind) []byte {
	n := len(dst) - start - FrameHeaderSize
	le.PutUint32(dst[start+frameLenOff:], uint32(n))
	dst[start+frameKindOff] = byte(k)
	le.PutUint32(dst[start+frameCRCOff:], crc(dst[start+frameLenOff:]))
	return dst
}

// AppendFrame appends a frame of kind k holding payload to dst.
func AppendFrame(dst []byte, k Kind, payload []byte) []byte {
	dst, start := beginFrame(dst)
	dst = append(dst, payload...)
	return endFrame(dst, start, k)
}

// AppendEventFrame appends the event frame of e to dst. The caller has
// validated e (event.Envelope.ValidateFields, assigned Seq/Version/Time).
func AppendEventFrame(dst []byte, e *event.Envelope) []byte {
	dst, start := beginFrame(dst)
	dst = AppendEnvelope(dst, e)
	return endFrame(dst, start, KindEvent)
}

// Commit is the payload of a commit frame: the batch it closes and the
// offset the writer knew to be durable when it wrote the batch.
type Commit struct {
	FirstSeq   uint64 // seq of the batch's first event
	Count      uint32 // events in the batch
	DurableEnd int64  // every byte before this offset was fsynced earlier
}

// AppendCommitFrame appends a commit frame to dst.
func AppendCommitFrame(dst []byte, c Commit) []byte {
	dst, start := beginFrame(dst)
	var p [commitPayloadSize]byte
	le.PutUint64(p[commitFirstSeqOff:], c.FirstSeq)
	le.PutUint32(p[commitCountOff:], c.Count)
	le.PutUint64(p[commitDurableEndOff:], uint64(c.DurableEnd))
	dst = append(dst, p[:]...)
	return endFrame(dst, start, KindCommit)
}

// CommitFrameSize is the size of a commit frame.
const CommitFrameSize = FrameHeaderSize + commitPayloadSize

// DecodeCommit decodes a commit frame payload.
func DecodeCommit(p []byte) (Commit, error) {
	if len(p) != commitPayloadSize {
		return Commit{}, fmt.Errorf("commit payload is %d bytes, want %d", len(p), commitPayloadSize)
	}
	c := Commit{
		FirstSeq:   le.Uint64(p[commitFirstSeqOff:]),
		Count:      le.Uint32(p[commitCountOff:]),
		DurableEnd: int64(le.Uint64(p[commitDurableEndOff:])),
	}
	if c.FirstSeq == 0 || c.Count == 0 || c.DurableEnd < 0 {
		return Commit{}, fmt.Errorf("commit frame: first seq %d, count %d, durable end %d", c.FirstSeq, c.Count, c.DurableEnd)
	}
	return c, nil
}

// Frame is one frame read by a Reader. Payload aliases the Reader's buffer
// and is valid only until the next call to Next.
type Frame struct {
	Kind    Kind
	Offset  int64 // offset of the frame header in the file
	Payload []byte
}

// Size returns the frame's size on disk.
func (f Frame) Size() int64 { return int64(FrameHeaderSize + len(f.Payload)) }

// FrameError reports a frame that cannot be read: the bytes at Offset are
// not a complete, valid frame.
type FrameError struct {
	Offset    int64
	Truncated bool // the frame runs past the end of the data
	Reason    string
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("invalid frame at offset %d: %s", e.Offset, e.Reason)
}

// ErrTruncated is matched by a FrameError whose frame runs past the end.
var ErrTruncated = errors.New("evlog/segment: truncated frame")

// Is makes errors.Is(err, ErrTruncated) true for truncated frames.
func (e *FrameError) Is(target error) bool { return target == ErrTruncated && e.Truncated }

// Reader reads frames sequentially from a range of an io.ReaderAt, through
// a reused buffer. It is the stream codec: it needs no filesystem (a
// bytes.Reader will do) and is what the fuzz targets drive. A Reader is not
// safe for concurrent use.
type Reader struct {
	ra     io.ReaderAt
	end    int64
	off    int64  // offset of the next frame
	buf    []byte // window of the data
	bufOff int64  // offset of buf[0]
	bufLen int    // valid bytes in buf
	chunk  int    // size of the last fill (0: none since NewReader or Reset)
}

// readChunk is the size of the Reader's reads (more when a frame is larger).
// The first read after NewReader or Reset is firstChunk bytes and each
// later one twice the last, up to readChunk: a point look-up (an event by
// seq or time, about one sparse-index interval of 256 events from where it
// starts) reads tens of KiB, not 256, and a scan soon reads 256 KiB at a
// time.
const (
	readChunk  = 256 << 10
	firstChunk = 32 << 10
)

// NewReader returns a Reader of the frames in [start, end) of ra.
func NewReader(ra io.ReaderAt, start, end int64) *Reader {
	return &Reader{ra: ra, off: start, end: end, bufOff: start}
}

// Reset makes r read [start, end) of ra, keeping its buffer.
func (r *Reader) Reset(ra io.ReaderAt, start, end int64) {
	*r = Reader{ra: ra, off: start, end: end, bufOff: start, buf: r.buf}
}

// seek makes off the offset of the next frame, keeping the buffered data
// when off lies inside it (Salvage moves back and forth by a few bytes).
func (r *Reader) seek(off int64) {
	if off < r.bufOff || off > r.bufOff+int64(r.bufLen) {
		r.bufOff, r.bufLen = off, 0
	}
	r.off = off
}

// Offset returns the offset of the next frame.
func (r *Reader) Offset() int64 { return r.off }

// End returns the end of the range being read.
func (r *Reader) End() int64 { return r.end }

// Next returns the next frame. It returns io.EOF exactly at the end of the
// range, a *FrameError when the bytes at the current offset are not a valid
// frame (the Reader does not advance past it), or the error of the
// underlying ReaderAt.
func (r *Reader) Next() (Frame, error) {
	rest := r.end - r.off
	if rest == 0 {
		return Frame{}, io.EOF
	}
	if rest < FrameHeaderSize {
		return Frame{}, &FrameError{Offset: r.off, Truncated: true, Reason: fmt.Sprintf("%d bytes left, a frame header needs %d", rest, FrameHeaderSize)}
	}
	hdr, err := r.window(FrameHeaderSize)
	if err != nil {
		return Frame{}, err
	}
	n := int64(le.Uint32(hdr[frameLenOff:]))
	kind := Kind(hdr[frameKindOff])
	switch {
	case n > MaxFramePayload:
		return Frame{}, &FrameError{Offset: r.off, Truncated: n > rest-FrameHeaderSize, Reason: fmt.Sprintf("frame length %d exceeds the limit %d", n, MaxFramePayload)}
	case n > rest-FrameHeaderSize:
		return Frame{}, &FrameError{Offset: r.off, Truncated: true, Reason: fmt.Sprintf("frame of %d bytes runs past the end (%d bytes left)", n, rest-FrameHeaderSize)}
	}
	b, err := r.window(FrameHeaderSize + int(n))
	if err != nil {
		return Frame{}, err
	}
	if got, want := crc(b[frameLenOff:]), le.Uint32(b[frameCRCOff:]); got != want {
		return Frame{}, &FrameError{Offset: r.off, Reason: fmt.Sprintf("checksum mismatch (stored %08x, computed %08x)", want, got)}
	}
	if !kind.valid() {
		return Frame{}, &FrameError{Offset: r.off, Reason: fmt.Sprintf("unknown frame kind %d", kind)}
	}
	f := Frame{Kind: kind, Offset: r.off, Payload: b[FrameHeaderSize:]}
	r.off += FrameHeaderSize + n
	return f, nil
}

// window returns n bytes at r.off, reading more data into the buffer if
// needed. n is at most FrameHeaderSize+MaxFramePayload and r.off+n <= r.end.
func (r *Reader) window(n int) ([]byte, error) {
	lo := int(r.off - r.bufOff)
	if lo+n <= r.bufLen {
		return r.buf[lo : lo+n], nil
	}
	// Slide the unread bytes to the front, then fill the rest.
	copy(r.buf, r.buf[lo:r.bufLen])
	r.bufLen -= lo
	r.bufOff = r.off
	want := max(n, int(min(readChunk, r.end-r.bufOff)))
	if len(r.buf) < want {
		nb := make([]byte, want)
		copy(nb, r.buf[:r.bufLen])
		r.buf = nb
	}
	r.chunk = min(max(2*r.chunk, firstChunk), readChunk)
	fill := min(int64(max(n, r.chunk)), int64(len(r.buf)), r.end-r.bufOff)
	for int64(r.bufLen) < fill {
		m, err := r.ra.ReadAt(r.buf[r.bufLen:fill], r.bufOff+int64(r.bufLen))
		r.bufLen += m
		if err != nil {
			if r.bufLen >= n {
				// What is needed was read; the read ahead failed (the end
				// of the data, or a damaged block of a compressed
				// segment's logical view): a read that needs those bytes
				// meets the error again.
				break
			}
			if errors.Is(err, io.EOF) {
				return nil, &FrameError{Offset: r.off, Truncated: true, Reason: "file ends early"}
			}
			return nil, err
		}
	}
	return r.buf[:n], nil
}
