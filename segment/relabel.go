package segment

import (
	"bufio"
	"fmt"
	"io"
)

// Copies of a segment under another log ID, for restores: a log restored
// to an earlier point diverges from the original once appended to, so it
// gets a new log ID (a new timeline), and every segment copied into it is
// relabelled. The log ID appears in three places of a segment: the header
// (and its CRC), the trailer's CRC (which covers the header), and the tag
// of every mark frame (the HMAC covers the log ID). Everything else is
// copied byte for byte, each frame checked on the way.

// relabelHeader returns s's header bytes with the log ID id and the flags
// flags, its CRC recomputed.
func relabelHeader(s *Segment, id LogID, flags uint16) [HeaderSize]byte {
	b := s.HeaderBytes
	copy(b[hdrLogIDOff:], id[:])
	le.PutUint16(b[hdrFlagsOff:], flags)
	le.PutUint32(b[hdrCRCOff:], crc(b[:hdrCRCOff]))
	return b
}

// copyFrames copies the frames in [start, end) of ra to w, checking each
// (Reader: length bound, CRC, kind), and with the tag of every mark frame
// recomputed for header h. allowed reports the kinds that may appear.
func copyFrames(w io.Writer, ra io.ReaderAt, file string, h Header, start, end int64, allowed func(Kind) bool) error {
	r := NewReader(ra, start, end)
	var buf []byte
	open := int64(-1) // offset of the first event of an uncommitted batch
	for {
		f, err := r.Next()
		if err == io.EOF {
			if open >= 0 {
				return corruptf(file, open, "the copy would end inside a batch (at %d)", end)
			}
			return nil
		}
		if fe, ok := err.(*FrameError); ok {
			return &CorruptError{File: file, Offset: fe.Offset, Reason: fe.Reason}
		}
		if err != nil {
			return fmt.Errorf("evlog/segment: reading %s: %w", file, err)
		}
		if !allowed(f.Kind) {
			return corruptf(file, f.Offset, "%s frame where it does not belong", f.Kind)
		}
		switch {
		case f.Kind == KindEvent && open < 0:
			open = f.Offset
		case f.Kind == KindCommit:
			open = -1
		}
		if f.Kind == KindMark {
			if _, err := DecodeMark(f.Payload, f.Offset); err != nil {
				return corruptf(file, f.Offset, "%v", err)
			}
			buf = appendMarkField(buf[:0], h, f.Offset, le.Uint64(f.Payload[markDurableEndOff:]))
		} else {
			buf = AppendFrame(buf[:0], f.Kind, f.Payload) // the same bytes
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
}

// appendMarkField appends a mark frame at offset at of a segment with
// header h whose durable end field (strict flag included) is field.
func appendMarkField(dst []byte, h Header, at int64, field uint64) []byte {
	dst, start := beginFrame(dst)
	var p [markPayloadSize]byte
	le.PutUint64(p[markDurableEndOff:], field)
	tag := markTag(h, at, field)
	copy(p[markTagOff:], tag[:])
	dst = append(dst, p[:]...)
	return endFrame(dst, start, KindMark)
}

// CopyAs writes to w a copy of segment s, sealed or not, that belongs to
// the log id: the same bytes but for the log ID in the header, the header
// and trailer checksums, and the tags of mark frames. Every frame is
// checked as it is copied (damage is a *CorruptError naming the file and
// offset); an unsealed segment must consist of whole frames. It returns
// the bytes written; it does not sync w.
func CopyAs(w io.Writer, s *Segment, id LogID) (int64, error) {
	bw := &countingWriter{w: bufio.NewWriterSize(w, 256<<10)}
	hb := relabelHeader(s, id, s.Header.Flags)
	bw.Write(hb[:])
	end := s.Size
	if s.Sealed {
		end -= TrailerSize
	}
	any := func(Kind) bool { return true }
	if !s.Sealed {
		any = recordKind
	}
	h := s.Header
	h.LogID = id
	if err := copyFrames(bw, s.f, s.Name, h, HeaderSize, end, any); err != nil {
		return bw.n, err
	}
	if s.Sealed {
		var tb [TrailerSize]byte
		if _, err := s.f.ReadAt(tb[:], end); err != nil {
			return bw.n, fmt.Errorf("evlog/segment: reading %s: %w", s.Name, err)
		}
		le.PutUint32(tb[trlCRCOff:], trailerCRC(hb[:], tb[:trlCRCOff]))
		bw.Write(tb[:])
	}
	return bw.n, bw.flush()
}

// CopyPrefixAs writes to w an unsealed segment of the log id holding the
// records of s before the logical offset end, which must be a batch
// boundary (the end of a commit or mark frame, or HeaderSize): the records
// as they are (decompressed, for a compressed segment), marks re-tagged,
// and for a version 2 segment a last mark recording that everything before
// it is durable — the caller syncs w before anyone reads it. The header
// keeps s's base seq, generation, version and mark key; its flags are
// cleared (the copy is neither compressed nor, with its last mark, waiting
// for one). It returns the bytes written.
func CopyPrefixAs(w io.Writer, s *Segment, end int64, id LogID) (int64, error) {
	ra, recEnd, err := s.Records()
	if err != nil {
		return 0, err
	}
	if end < HeaderSize || end > recEnd {
		return 0, fmt.Errorf("evlog/segment: %s: cut at %d is outside its records [%d, %d]", s.Name, end, HeaderSize, recEnd)
	}
	bw := &countingWriter{w: bufio.NewWriterSize(w, 256<<10)}
	hb := relabelHeader(s, id, 0)
	bw.Write(hb[:])
	h := s.Header
	h.LogID, h.Flags = id, 0
	if err := copyFrames(bw, ra, s.Name, h, HeaderSize, end, recordKind); err != nil {
		return bw.n, err
	}
	if h.Version >= 2 {
		bw.Write(AppendMarkFrame(nil, h, end, false))
	}
	return bw.n, bw.flush()
}

// recordKind reports the kinds found among a segment's records.
func recordKind(k Kind) bool { return k == KindEvent || k == KindCommit || k == KindMark }

// countingWriter counts the bytes written through a buffered writer and
// keeps its first error.
type countingWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

func (c *countingWriter) flush() error {
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}
