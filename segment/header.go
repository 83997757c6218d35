package segment

import (
	"bytes"
	"fmt"
	"math"
	"time"
)

// LogID identifies a log. It is random, fixed when the log is created, and
// written into every segment (and snapshot) so that files from another log
// are recognised.
type LogID [16]byte

func (id LogID) String() string { return fmt.Sprintf("%x", id[:]) }

// Header is the fixed header at the start of every segment file.
//
//	+--------+-------+-------+--------+--------+---------+-----+---------+------+-----+
//	| magic  |version| flags |hdr size| log ID |base seq | gen | created | rsvd | CRC |  v1
//	| 8      | 2     | 2     | 4      | 16     | 8       | 8   | 8 (ns)  | 4    | 4   |
//	+--------+-------+-------+--------+--------+---------+-----+---------+------+-----+
//	 0        8       10      12       16       32        40    48        56     60
//
//	                                                           +-------+----------+
//	 v2: the same up to offset 48, then                        |created| mark key |
//	                                                           |4 (s)  | 8        |
//	                                                           +-------+----------+
//	                                                            48      52         60
type Header struct {
	Version    uint16
	Flags      uint16
	LogID      LogID
	BaseSeq    uint64 // seq of the segment's first event
	Generation uint64
	// Created is the creation time (informational). Version 1 stores it in
	// nanoseconds, version 2 in whole seconds (clamped to 1970..2106).
	Created time.Time
	// MarkKey (version 2) keys the tags of the segment's mark frames: it
	// is random, chosen when the segment is created (see Create), and
	// appears nowhere else, so bytes inside an event payload cannot forge
	// a mark (see ProvesDurable). Version 1 headers have none.
	MarkKey [8]byte
}

// Encode returns the header's bytes, with Version set to FormatVersion if it
// is zero.
func (h Header) Encode() [HeaderSize]byte {
	var b [HeaderSize]byte
	copy(b[hdrMagicOff:], headerMagic)
	if h.Version == 0 {
		h.Version = FormatVersion
	}
	le.PutUint16(b[hdrVersionOff:], h.Version)
	le.PutUint16(b[hdrFlagsOff:], h.Flags)
	le.PutUint32(b[hdrSizeOff:], HeaderSize)
	copy(b[hdrLogIDOff:], h.LogID[:])
	le.PutUint64(b[hdrBaseSeqOff:], h.BaseSeq)
	le.PutUint64(b[hdrGenerationOff:], h.Generation)
	if h.Version >= 2 {
		le.PutUint32(b[hdrCreatedSecOff:], uint32(min(max(h.Created.Unix(), 0), math.MaxUint32)))
		copy(b[hdrMarkKeyOff:], h.MarkKey[:])
	} else {
		le.PutUint64(b[hdrCreatedOff:], uint64(h.Created.UnixNano()))
	}
	le.PutUint32(b[hdrCRCOff:], crc(b[:hdrCRCOff]))
	return b
}

// DecodeHeader decodes and checks a segment header. Errors are plain
// descriptions; callers wrap them into a *CorruptError naming the file.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("file is %d bytes, shorter than the %d-byte header", len(b), HeaderSize)
	}
	if !bytes.Equal(b[hdrMagicOff:hdrMagicOff+len(headerMagic)], []byte(headerMagic)) {
		return Header{}, fmt.Errorf("bad magic %q: not an evlog segment", b[:len(headerMagic)])
	}
	if got, want := crc(b[:hdrCRCOff]), le.Uint32(b[hdrCRCOff:]); got != want {
		return Header{}, fmt.Errorf("header checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	h := Header{
		Version:    le.Uint16(b[hdrVersionOff:]),
		Flags:      le.Uint16(b[hdrFlagsOff:]),
		BaseSeq:    le.Uint64(b[hdrBaseSeqOff:]),
		Generation: le.Uint64(b[hdrGenerationOff:]),
	}
	copy(h.LogID[:], b[hdrLogIDOff:])
	if h.Version >= 2 {
		h.Created = time.Unix(int64(le.Uint32(b[hdrCreatedSecOff:])), 0).UTC()
		copy(h.MarkKey[:], b[hdrMarkKeyOff:])
	} else {
		h.Created = time.Unix(0, int64(le.Uint64(b[hdrCreatedOff:]))).UTC()
	}
	switch {
	case h.Version == 0 || h.Version > FormatVersion:
		return Header{}, fmt.Errorf("format version %d is not supported (this build reads up to %d; upgrade evlog)", h.Version, FormatVersion)
	case le.Uint32(b[hdrSizeOff:]) != HeaderSize:
		return Header{}, fmt.Errorf("header size %d, want %d", le.Uint32(b[hdrSizeOff:]), HeaderSize)
	case h.Flags&^knownFlags != 0, h.Version < 2 && h.Flags&FlagStrict != 0:
		return Header{}, fmt.Errorf("unknown header flags %#x (upgrade evlog)", h.Flags)
	case h.BaseSeq == 0:
		return Header{}, fmt.Errorf("base seq is 0")
	}
	return h, nil
}

// Trailer is the fixed record at the very end of a sealed segment. It lets
// Open learn a sealed segment's seq and time range from two small reads
// (header and trailer), without reading any record.
//
//	+-------+------------+-------------+-------------+-------+----------+------------+-----------+-------------+-----+
//	| magic | records end| summary off | summary len | count | last seq | first time | last time | new streams | CRC |
//	| 8     | 8          | 8           | 4           | 4     | 8        | 8          | 8         | 4           | 4   |
//	+-------+------------+-------------+-------------+-------+----------+------------+-----------+-------------+-----+
//	 0       8            16            24            28      32         40           48          56            60
//
// The CRC covers the segment header's first 60 bytes (all but its CRC)
// followed by the trailer's first 60 bytes, binding the trailer to its file.
type Trailer struct {
	RecordsEnd int64  // offset where the event and commit frames end
	SummaryOff int64  // offset of the summary frame
	SummaryLen uint32 // size of the summary frame
	Count      uint32 // events in the segment
	LastSeq    uint64 // seq of the last event (BaseSeq-1 when empty)
	FirstTime  int64  // recorded time of the first event, unix ns (0 when empty)
	LastTime   int64  // recorded time of the last event, unix ns (0 when empty)
	NewStreams uint32 // events with Version 1: streams that begin here
}

// Encode returns the trailer's bytes for a segment with the given header.
func (t Trailer) Encode(header [HeaderSize]byte) [TrailerSize]byte {
	var b [TrailerSize]byte
	copy(b[trlMagicOff:], trailerMagic)
	le.PutUint64(b[trlRecordsEndOff:], uint64(t.RecordsEnd))
	le.PutUint64(b[trlSummaryOff:], uint64(t.SummaryOff))
	le.PutUint32(b[trlSummaryLenOff:], t.SummaryLen)
	le.PutUint32(b[trlCountOff:], t.Count)
	le.PutUint64(b[trlLastSeqOff:], t.LastSeq)
	le.PutUint64(b[trlFirstTimeOff:], uint64(t.FirstTime))
	le.PutUint64(b[trlLastTimeOff:], uint64(t.LastTime))
	le.PutUint32(b[trlNewStreamsOff:], t.NewStreams)
	le.PutUint32(b[trlCRCOff:], trailerCRC(header[:], b[:trlCRCOff]))
	return b
}

// trailerCRC binds the trailer to its header: it covers the header's bytes
// before the header CRC (the CRC of a message followed by its own CRC is a
// constant, so including it would bind nothing) and the trailer's body.
func trailerCRC(header, body []byte) uint32 {
	return crc32Update(crc(header[:hdrCRCOff]), body)
}

// DecodeTrailer decodes the trailer b of a segment of size bytes whose header
// bytes are header and decoded header is h. ok is false when b is not a
// trailer at all (the segment is not sealed); err reports a trailer whose
// checksum matches but whose fields are impossible.
func DecodeTrailer(b []byte, header []byte, h Header, size int64) (t Trailer, ok bool, err error) {
	if len(b) != TrailerSize || !bytes.Equal(b[:len(trailerMagic)], []byte(trailerMagic)) {
		return Trailer{}, false, nil
	}
	if trailerCRC(header, b[:trlCRCOff]) != le.Uint32(b[trlCRCOff:]) {
		return Trailer{}, false, nil
	}
	t = Trailer{
		RecordsEnd: int64(le.Uint64(b[trlRecordsEndOff:])),
		SummaryOff: int64(le.Uint64(b[trlSummaryOff:])),
		SummaryLen: le.Uint32(b[trlSummaryLenOff:]),
		Count:      le.Uint32(b[trlCountOff:]),
		LastSeq:    le.Uint64(b[trlLastSeqOff:]),
		FirstTime:  int64(le.Uint64(b[trlFirstTimeOff:])),
		LastTime:   int64(le.Uint64(b[trlLastTimeOff:])),
		NewStreams: le.Uint32(b[trlNewStreamsOff:]),
	}
	footerEnd := size - TrailerSize
	switch {
	case t.RecordsEnd < HeaderSize || t.RecordsEnd > footerEnd:
		return t, true, fmt.Errorf("trailer: records end %d outside [%d, %d]", t.RecordsEnd, HeaderSize, footerEnd)
	case t.SummaryOff < t.RecordsEnd || t.SummaryOff+int64(t.SummaryLen) != footerEnd:
		return t, true, fmt.Errorf("trailer: summary at %d+%d does not end at the trailer (%d)", t.SummaryOff, t.SummaryLen, footerEnd)
	case t.SummaryLen < FrameHeaderSize || t.SummaryLen > FrameHeaderSize+MaxFramePayload:
		return t, true, fmt.Errorf("trailer: summary length %d", t.SummaryLen)
	case t.LastSeq+1 < h.BaseSeq || t.LastSeq-h.BaseSeq+1 != uint64(t.Count):
		return t, true, fmt.Errorf("trailer: %d events do not span seqs %d..%d", t.Count, h.BaseSeq, t.LastSeq)
	case t.Count > 0 && t.FirstTime > t.LastTime:
		return t, true, fmt.Errorf("trailer: first time %d after last time %d", t.FirstTime, t.LastTime)
	case uint64(t.NewStreams) > uint64(t.Count):
		return t, true, fmt.Errorf("trailer: %d new streams in %d events", t.NewStreams, t.Count)
	}
	return t, true, nil
}
