package snapshot

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
)

// Wire format, versions 1 to 4 (see the package documentation for the
// diagram). These values are the on-disk format: never change them. A new
// layout is a new formatVersion, and readers keep decoding the old ones.
const (
	magic = "evlogsnp"

	formatVersion1 uint16 = 1
	// formatVersion2 adds the Anchor after the name.
	formatVersion2 uint16 = 2
	// formatVersion3 adds the Scope after the Anchor.
	formatVersion3 uint16 = 3
	// formatVersion4 adds the Unfolded ranges after the Scope. Save
	// writes it only for a Meta with Unfolded ranges (version 3
	// otherwise), so that only such files need a reader of version 4.
	formatVersion4 uint16 = 4
	// currentVersion is the newest version: Save writes it (or version
	// 3: see formatVersion4), readers reject newer ones.
	currentVersion = formatVersion4

	// Header field offsets.
	offMagic          = 0
	offVersion        = 8
	offFlags          = 10
	offHeaderLen      = 12
	offLogID          = 16
	offSeq            = 32
	offTime           = 40
	offSchemaVersion  = 48
	offRawSize        = 56
	offCompressedSize = 64
	offNameLen        = 72
	offName           = 74 // the name, then (version 2) the anchor, (version 3) the scope, then the header CRC

	crcLen    = 4 // a CRC-32C, little-endian
	anchorLen = 8 // versions 2 and 3: the Anchor, little-endian, after the name
	scopeLen  = 8 // versions 3 and 4: the Scope, little-endian, after the Anchor
	// version 4: after the Scope, the count K (u16) of Unfolded ranges,
	// then K ranges of two u64 (From, To).
	unfoldedCountLen = 2
	seqRangeLen      = 16

	// minHeaderLen and maxHeaderLen bound the header length field (of
	// any version).
	minHeaderLen = offName + 1 + crcLen
	maxHeaderLen = offName + MaxNameLen + anchorLen + scopeLen + unfoldedCountLen + MaxUnfolded*seqRangeLen + crcLen
	// trailerLen is the size of the file CRC after the payload.
	trailerLen = crcLen
	// minFileLen is the shortest possible snapshot file: a one-byte name
	// and a payload of minFrameLen bytes.
	minFileLen = minHeaderLen + minFrameLen + trailerLen
)

// MaxNameLen is the longest subject name, in bytes. It is part of the file
// format.
const MaxNameLen = 1024

// zstd frame limits (RFC 8878) that bound what the payload may hold.
const (
	// minFrameLen is the smallest zstd frame: magic, frame header
	// descriptor, and one block header.
	minFrameLen = 4 + 1 + blockHeaderLen
	// blockHeaderLen is the size of a zstd block header.
	blockHeaderLen = 3
	// maxBlockSize is the most a zstd block may hold or produce.
	maxBlockSize = 128 << 10
	// frameChecksumLen is the size of the optional zstd content checksum.
	frameChecksumLen = 4
	// smallFrameLen: frames that decode to fewer bytes may omit their
	// content size (the zstd encoder does so unless single-segment).
	smallFrameLen = 256

	// zstd block types.
	blockRaw        = 0
	blockRLE        = 1
	blockCompressed = 2
)

// castagnoli is the CRC-32C table.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Bounds on Time, so that it survives the round trip through Unix
// nanoseconds in an int64.
var (
	minTime = time.Unix(0, -1<<63).UTC()
	maxTime = time.Unix(0, 1<<63-1).UTC()
)

// maxCompressedLen bounds the payload of a state of rawSize bytes: what the
// zstd encoder can produce for incompressible input (a raw block with a
// 3-byte header per 64 KiB at the fastest level, 128 KiB otherwise) plus
// the largest frame header and the content checksum, with room to spare. A
// header declaring more is corrupt, which keeps reads bounded by the raw
// size cap.
func maxCompressedLen(rawSize int64) int64 {
	const frameOverhead = 64
	return rawSize + rawSize>>10 + frameOverhead
}

// headerLen returns the length of the header Save writes for a Meta with
// a name of nameLen bytes and no Unfolded ranges (version 3).
func headerLen(nameLen int) int { return headerLenV(formatVersion3, nameLen, 0) }

// versionFor returns the format version Save writes m in: 4 when m has
// Unfolded ranges, else 3.
func versionFor(m *Meta) uint16 {
	if m.Unfolded.Len() > 0 {
		return formatVersion4
	}
	return formatVersion3
}

// headerLenV returns the length of a header of format version v (1 to 4)
// for a name of nameLen bytes (and, version 4, k Unfolded ranges).
func headerLenV(v uint16, nameLen, k int) int {
	switch v {
	case formatVersion1:
		return offName + nameLen + crcLen
	case formatVersion2:
		return offName + nameLen + anchorLen + crcLen
	case formatVersion3:
		return offName + nameLen + anchorLen + scopeLen + crcLen
	}
	return offName + nameLen + anchorLen + scopeLen + unfoldedCountLen + k*seqRangeLen + crcLen
}

// appendHeader appends the header of m in format version v (1 to 4; a
// version 1 header has no anchor, a version 1 or 2 header no scope, only
// a version 4 header has the Unfolded ranges) to
// dst. m.RawSize and m.CompressedSize must be set. The name must be valid
// (checkName).
//
//	magic | ver | flags | hdrlen | LogID | Seq | Time | SchemaVersion |
//	RawSize | CompressedSize | N | Name | Anchor (v2+) | Scope (v3+) |
//	K, K × (From, To) (v4) | hdrCRC
func appendHeader(dst []byte, m *Meta, v uint16) []byte {
	start := len(dst)
	dst = append(dst, magic...)
	dst = binary.LittleEndian.AppendUint16(dst, v)
	dst = binary.LittleEndian.AppendUint16(dst, 0) // flags
	dst = binary.LittleEndian.AppendUint32(dst, uint32(headerLenV(v, len(m.Name), m.Unfolded.Len())))
	dst = append(dst, m.LogID[:]...)
	dst = binary.LittleEndian.AppendUint64(dst, m.Seq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(m.Time.UnixNano()))
	dst = binary.LittleEndian.AppendUint64(dst, m.SchemaVersion)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(m.RawSize))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(m.CompressedSize))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(m.Name)))
	dst = append(dst, m.Name...)
	if v != formatVersion1 {
		dst = binary.LittleEndian.AppendUint64(dst, m.Anchor)
	}
	if v >= formatVersion3 {
		dst = binary.LittleEndian.AppendUint64(dst, m.Scope)
	}
	if v >= formatVersion4 {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(m.Unfolded.Len()))
		dst = append(dst, m.Unfolded.b...)
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// decodeHeader decodes the header at the start of b, a prefix of a file of
// size bytes named file (for errors), and checks it against the file size
// and maxRaw. It returns the metadata (File unset) and the header length.
// Any problem is a *CorruptError. It allocates nothing proportional to the
// sizes the header declares.
//
//	magic | ver | flags | hdrlen | LogID | Seq | Time | SchemaVersion |
//	RawSize | CompressedSize | N | Name | Anchor (v2+) | Scope (v3+) |
//	K, K × (From, To) (v4) | hdrCRC
func decodeHeader(file string, b []byte, size, maxRaw int64) (Meta, int, error) {
	corrupt := func(off int64, format string, args ...any) (Meta, int, error) {
		return Meta{}, 0, &CorruptError{File: file, Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	newer := func(off int64, format string, args ...any) (Meta, int, error) {
		return Meta{}, 0, &CorruptError{File: file, Offset: off, Reason: fmt.Sprintf(format, args...), Newer: true}
	}
	switch {
	case size == 0:
		return corrupt(0, "empty file")
	case size < minFileLen || len(b) < minHeaderLen:
		return corrupt(size, "file is %d bytes, shorter than the smallest snapshot (%d bytes)", size, minFileLen)
	case string(b[offMagic:offMagic+len(magic)]) != magic:
		return corrupt(offMagic, "not a snapshot file (bad magic %q)", b[offMagic:offMagic+len(magic)])
	}
	le := binary.LittleEndian
	v := le.Uint16(b[offVersion:])
	if v != formatVersion1 && v != formatVersion2 && v != formatVersion3 && v != formatVersion4 {
		if v > currentVersion {
			return newer(offVersion, "format version %d is newer than this build reads (%d); upgrade evlog", v, currentVersion)
		}
		return corrupt(offVersion, "unknown format version %d", v)
	}
	if f := le.Uint16(b[offFlags:]); f != 0 {
		return newer(offFlags, "unknown flags %#04x (written by a newer evlog?)", f)
	}
	hlen := int64(le.Uint32(b[offHeaderLen:]))
	if hlen < minHeaderLen || hlen > maxHeaderLen {
		return corrupt(offHeaderLen, "header length %d outside [%d, %d]", hlen, minHeaderLen, maxHeaderLen)
	}
	if hlen > int64(len(b)) || hlen > size {
		return corrupt(size, "file is %d bytes, shorter than its %d-byte header", size, hlen)
	}
	n := int(le.Uint16(b[offNameLen:]))
	if n < 1 || n > MaxNameLen {
		// Checked on its own: the header length bound (which leaves room
		// for MaxUnfolded ranges) does not bound the name.
		return corrupt(offNameLen, "name length %d outside [1, %d]", n, MaxNameLen)
	}
	k := 0 // version 4: the number of Unfolded ranges
	if v == formatVersion4 {
		offK := int64(offName + n + anchorLen + scopeLen)
		if offK+unfoldedCountLen+crcLen > hlen {
			return corrupt(offNameLen, "name length %d does not fit header length %d", n, hlen)
		}
		if k = int(le.Uint16(b[offK:])); k > MaxUnfolded {
			return corrupt(offK, "%d unfolded ranges, more than %d", k, MaxUnfolded)
		}
	}
	if int64(headerLenV(v, n, k)) != hlen {
		return corrupt(offNameLen, "name length %d does not match header length %d", n, hlen)
	}
	crcOff := int(hlen) - crcLen
	if got, want := crc32.Checksum(b[:crcOff], castagnoli), le.Uint32(b[crcOff:]); got != want {
		return corrupt(int64(crcOff), "header checksum mismatch (computed %#08x, stored %#08x)", got, want)
	}

	m := Meta{
		Seq:            le.Uint64(b[offSeq:]),
		Time:           time.Unix(0, int64(le.Uint64(b[offTime:]))).UTC(),
		SchemaVersion:  le.Uint64(b[offSchemaVersion:]),
		RawSize:        int64(le.Uint64(b[offRawSize:])),
		CompressedSize: int64(le.Uint64(b[offCompressedSize:])),
	}
	copy(m.LogID[:], b[offLogID:offSeq])
	name := b[offName : offName+n]
	if v != formatVersion1 {
		m.Anchor = le.Uint64(b[offName+n:])
	}
	if v >= formatVersion3 {
		m.Scope = le.Uint64(b[offName+n+anchorLen:])
	}
	if v >= formatVersion4 {
		off := offName + n + anchorLen + scopeLen + unfoldedCountLen
		m.Unfolded = SeqRanges{string(b[off : off+k*seqRangeLen])}
	}
	switch {
	case !utf8.Valid(name):
		return corrupt(offName, "name is not valid UTF-8")
	case m.Seq == 0:
		return corrupt(offSeq, "seq is 0")
	case v == formatVersion4 && k == 0:
		return corrupt(int64(offName+n+anchorLen+scopeLen), "version 4 header with no unfolded ranges")
	case checkUnfolded(m.Unfolded, m.Seq) != "":
		return corrupt(int64(offName+n+anchorLen+scopeLen), "%s", checkUnfolded(m.Unfolded, m.Seq))
	case m.RawSize < 0:
		return corrupt(offRawSize, "negative raw size %d", m.RawSize)
	case m.RawSize > maxRaw:
		// Also ErrTooLarge: perhaps a genuine snapshot of a log whose
		// bound is higher than this reader's.
		return Meta{}, 0, &CorruptError{File: file, Offset: offRawSize, Err: ErrTooLarge,
			Reason: fmt.Sprintf("raw size %d exceeds MaxRawSize %d (if the snapshot is genuine, raise Options.MaxRawSize)", m.RawSize, maxRaw)}
	case m.CompressedSize < minFrameLen || m.CompressedSize > maxCompressedLen(m.RawSize):
		return corrupt(offCompressedSize, "compressed size %d outside [%d, %d] for raw size %d",
			m.CompressedSize, minFrameLen, maxCompressedLen(m.RawSize), m.RawSize)
	}
	if want := hlen + m.CompressedSize + trailerLen; size != want {
		return corrupt(min(size, want), "file is %d bytes, its header declares %d (truncated or extended)", size, want)
	}
	m.Name = string(name)
	return m, int(hlen), nil
}

// checkFrame checks that payload is exactly one zstd frame with no
// dictionary whose declared content size is rawSize (or absent, only for
// frames under smallFrameLen bytes), walking its block headers. It returns a
// reason and an offset within payload, or "" when the frame is well formed.
// Together with an output buffer of capacity rawSize+maxBlockSize, this
// guarantees the decoder never grows the buffer: it fails after at most one
// block past the declared size.
func checkFrame(payload []byte, rawSize int64) (reason string, off int) {
	var h zstd.Header
	if err := h.Decode(payload); err != nil {
		return fmt.Sprintf("payload is not a zstd frame: %v", err), 0
	}
	switch {
	case h.Skippable:
		return "payload is a skippable zstd frame", 0
	case h.DictionaryID != 0:
		return fmt.Sprintf("zstd frame needs dictionary %d", h.DictionaryID), 0
	case h.HasFCS && h.FrameContentSize != uint64(rawSize):
		return fmt.Sprintf("zstd frame declares %d bytes, the header %d", h.FrameContentSize, rawSize), 0
	case !h.HasFCS && rawSize >= smallFrameLen:
		return fmt.Sprintf("zstd frame does not declare its size (header: %d bytes)", rawSize), 0
	case !h.SingleSegment && h.WindowSize > maxWindow:
		return fmt.Sprintf("zstd window %d exceeds the %d-byte cap", h.WindowSize, maxWindow), 0
	}
	pos := h.HeaderSize
	for {
		if len(payload)-pos < blockHeaderLen {
			return "zstd frame truncated in a block header", pos
		}
		bh := uint32(payload[pos]) | uint32(payload[pos+1])<<8 | uint32(payload[pos+2])<<16
		last, typ, size := bh&1 != 0, (bh>>1)&3, int(bh>>3)
		if size > maxBlockSize {
			return fmt.Sprintf("zstd block of %d bytes exceeds %d", size, maxBlockSize), pos
		}
		n := size
		switch typ {
		case blockRaw, blockCompressed:
		case blockRLE:
			n = 1
		default:
			return "reserved zstd block type", pos
		}
		pos += blockHeaderLen
		if len(payload)-pos < n {
			return "zstd frame truncated in a block", pos
		}
		pos += n
		if last {
			break
		}
	}
	if h.HasCheckSum {
		if len(payload)-pos < frameChecksumLen {
			return "zstd frame truncated in its checksum", pos
		}
		pos += frameChecksumLen
	}
	if pos != len(payload) {
		return fmt.Sprintf("%d bytes after the zstd frame", len(payload)-pos), pos
	}
	return "", 0
}
