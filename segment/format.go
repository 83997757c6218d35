package segment

import (
	"encoding/binary"
	"hash/crc32"
)

// Wire format constants. NEVER CHANGE any of these: files written by every
// release must stay readable. A change of layout needs a new FormatVersion
// and a decoder for each older version (see doc.go, "Versioning").
const (
	// FormatVersion is the segment format this package writes. Version 2
	// added the mark key to the header (in place of the nanoseconds of the
	// creation time) and the mark frame (KindMark); version 1 files decode
	// unchanged. Version 3 added the event ID table to the footer (KindIDs,
	// referenced from the end of the summary frame); version 1 and 2 files
	// decode unchanged (without a table). Version 4 added the name-ordered
	// stream index to the footer (KindNames frames, their directory at the
	// end of the summary frame), so that a stream-name prefix reads only
	// the blocks covering it; older files decode unchanged (a prefix query
	// reads all their stream blocks).
	FormatVersion = 4

	// headerMagic opens every segment file.
	headerMagic = "evlogseg"
	// trailerMagic opens the fixed trailer that ends a sealed segment.
	trailerMagic = "evlogidx"

	// Segment header layout (HeaderSize bytes, little-endian).
	hdrMagicOff      = 0  // [8]byte  headerMagic
	hdrVersionOff    = 8  // uint16   format version
	hdrFlagsOff      = 10 // uint16   flags (FlagCompressed, …)
	hdrSizeOff       = 12 // uint32   header size (HeaderSize)
	hdrLogIDOff      = 16 // [16]byte log ID
	hdrBaseSeqOff    = 32 // uint64   seq of the first event in the segment
	hdrGenerationOff = 40 // uint64   generation (0 when appended, +1 per rewrite)
	hdrCreatedOff    = 48 // v1: int64 creation time, unix nanoseconds (informational)
	hdrReservedOff   = 56 // v1: uint32 zero
	hdrCreatedSecOff = 48 // v2: uint32 creation time, unix seconds (informational)
	hdrMarkKeyOff    = 52 // v2: [8]byte mark key (random, per segment)
	hdrCRCOff        = 60 // uint32   CRC32C of bytes [0, hdrCRCOff)
	// HeaderSize is the size of the segment header.
	HeaderSize = 64

	// Frame header layout (FrameHeaderSize bytes, little-endian).
	frameCRCOff  = 0 // uint32 CRC32C of bytes [frameLenOff, frameEnd)
	frameLenOff  = 4 // uint32 payload length
	frameKindOff = 8 // uint8  frame kind
	// FrameHeaderSize is the size of a frame header.
	FrameHeaderSize = 9

	// MaxFramePayload bounds the payload length of any frame. A length
	// field above it is corruption (or a torn tail), never an allocation.
	MaxFramePayload = 64 << 20

	// Commit frame payload layout (commitPayloadSize bytes).
	commitFirstSeqOff   = 0  // uint64 seq of the batch's first event
	commitCountOff      = 8  // uint32 events in the batch
	commitDurableEndOff = 12 // uint64 offset known durable when written
	commitPayloadSize   = 20

	// Mark frame payload layout (markPayloadSize bytes, version 2).
	markDurableEndOff = 0 // uint64  every byte before it had been fsynced;
	//                       its top bit is MarkStrict (see below)
	markTagOff      = 8 // [8]byte first 8 bytes of HMAC-SHA256 (see markTag)
	markTagSize     = 8
	markPayloadSize = 16
	// markStrictBit, the top bit of the durable end field, is set by a
	// writer that acknowledges appends only once they are durable
	// (SyncAlways): readers in other processes then serve only what the
	// mark records as durable. Clear: the writer acknowledges appends when
	// written (SyncInterval, SyncNever), and readers serve every committed
	// batch. Offsets never reach 2^63.
	markStrictBit = 1 << 63

	// Trailer layout (TrailerSize bytes at the very end of a sealed segment).
	trlMagicOff      = 0  // [8]byte trailerMagic
	trlRecordsEndOff = 8  // uint64 offset where the event/commit frames end
	trlSummaryOff    = 16 // uint64 offset of the summary frame
	trlSummaryLenOff = 24 // uint32 length of the summary frame (header included)
	trlCountOff      = 28 // uint32 events in the segment
	trlLastSeqOff    = 32 // uint64 seq of the last event (base seq - 1 if empty)
	trlFirstTimeOff  = 40 // int64  recorded time of the first event, unix ns
	trlLastTimeOff   = 48 // int64  recorded time of the last event, unix ns
	trlNewStreamsOff = 56 // uint32 events with Version 1 (streams begun here)
	trlCRCOff        = 60 // uint32 CRC32C of the header's 64 bytes then [0, trlCRCOff)
	// TrailerSize is the size of the trailer.
	TrailerSize = 64

	// Stream block entry: fixed part, followed by the stream name.
	entHashOff     = 0  // uint64 streamHash(name)
	entFirstVerOff = 8  // uint64 version of the stream's first event here
	entCountOff    = 16 // uint32 events of the stream in this segment
	entPostOffOff  = 20 // uint64 offset of the stream's postings frame
	entPostLenOff  = 28 // uint32 length of that frame (header included)
	entNameLenOff  = 32 // uint16 length of the name that follows
	entFixedSize   = 34

	// Summary sparse-index entry.
	sparseSeqOff  = 0  // uint64 seq
	sparseOffOff  = 8  // uint64 frame offset of that event
	sparseTimeOff = 16 // int64  recorded time, unix ns
	sparseSize    = 24

	// Summary block-directory entry.
	blkHashOff  = 0  // uint64 hash of the block's first entry
	blkOffOff   = 8  // uint64 offset of the block frame
	blkLenOff   = 16 // uint32 length of the block frame (header included)
	blkSize     = 20
	blockStride = 16 // stream entries per block (at most)

	// Compressed segments: zmap entry (after a u32 count).
	zmPhysOffOff = 0  // uint64 offset of the zblock frame
	zmPhysLenOff = 8  // uint32 size of the zblock frame (header included)
	zmLogLenOff  = 12 // uint32 record bytes it holds
	zmEntrySize  = 16
	// ZBlockSize is the number of record bytes per zblock that compaction
	// writes; MaxZBlock bounds what a reader decompresses for one block.
	ZBlockSize = 64 << 10
	MaxZBlock  = 1 << 20

	// Summary, version 3: the ID table reference after the bloom filter.
	sumIDsOffOff = 0 // uint64 offset of the ID table frame (0: none)
	sumIDsLenOff = 8 // uint32 length of that frame (header included; 0: none)
	sumIDsSize   = 12

	// Summary, version 4: the name-block directory after the ID table
	// reference: a u32 count (⌈streams/nameStride⌉), then per name block
	// (in name order) this fixed part followed by the block's first name.
	nbOffOff     = 0  // uint64 offset of the name block frame
	nbLenOff     = 8  // uint32 length of that frame (header included)
	nbNameLenOff = 12 // uint16 length of the block's first stream name
	nbFixedSize  = 14
	// nameStride is the number of stream entries per name block (at most;
	// only the last block holds fewer). Entries have the stream block
	// entry layout (ent* above), sorted by name.
	nameStride = 64

	// ID table entry (after a u32 count), sorted by (hash, seq).
	idHashOff   = 0 // uint64 IDHash(event ID)
	idSeqOff    = 8 // uint64 seq of the event carrying it
	idEntrySize = 16

	// Bloom filter parameters.
	bloomBitsPerKey = 10
	bloomProbes     = 7
)

// Frame kinds. NEVER CHANGE the values.
const (
	KindEvent    Kind = 1  // one event envelope (msgpack)
	KindCommit   Kind = 2  // ends a batch: the batch's events are committed
	KindPostings Kind = 3  // footer: frame offsets of one stream's events
	KindBlock    Kind = 4  // footer: up to blockStride stream-index entries
	KindSummary  Kind = 5  // footer: sparse seq/time index, block directory, bloom
	KindZBlock   Kind = 6  // compressed segments: one zstd frame of record bytes
	KindZMap     Kind = 7  // compressed segments: the directory of the zblocks
	KindMark     Kind = 8  // version 2: records that the file was fsynced up to an offset
	KindIDs      Kind = 9  // version 3, footer: (ID hash, seq) of the events carrying an ID
	KindNames    Kind = 10 // version 4, footer: up to nameStride stream-index entries, by name
)

// Header flags. NEVER CHANGE the values.
const (
	// FlagCompressed marks a sealed segment whose frames are stored in
	// independently zstd-compressed blocks (written only by compaction).
	FlagCompressed uint16 = 1 << 0
	// FlagStrict (version 2) marks a segment created by a writer that
	// acknowledges appends only once they are durable (SyncAlways): until
	// the segment's first mark, whose strict flag then takes over (the
	// writer appending may run another mode after a reopen), readers in
	// other processes serve only what a mark records as durable.
	FlagStrict uint16 = 1 << 1
	knownFlags        = FlagCompressed | FlagStrict
)

// Kind is the kind of a frame.
type Kind uint8

func (k Kind) String() string {
	switch k {
	case KindEvent:
		return "event"
	case KindCommit:
		return "commit"
	case KindPostings:
		return "postings"
	case KindBlock:
		return "block"
	case KindSummary:
		return "summary"
	case KindZBlock:
		return "zblock"
	case KindZMap:
		return "zmap"
	case KindMark:
		return "mark"
	case KindIDs:
		return "ids"
	case KindNames:
		return "names"
	}
	return "invalid"
}

func (k Kind) valid() bool { return k >= KindEvent && k <= KindNames }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

var le = binary.LittleEndian

// streamHash is the 64-bit FNV-1a hash of a stream name. It is part of the
// format (stream blocks are sorted by it, bloom filters probe with it).
func streamHash(s string) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime64
	}
	return h
}

// IDHash is the 64-bit hash of an event ID kept in a sealed segment's ID
// table: FNV-1a, as streamHash. It is part of the format (tables are
// sorted by it), the same in every process. Equal hashes are candidates
// only: a reader confirms the ID by reading the event.
func IDHash(id string) uint64 { return streamHash(id) }

func crc32Update(c uint32, b []byte) uint32 { return crc32.Update(c, castagnoli, b) }
