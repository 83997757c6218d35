// Package segment reads and writes evlog's segment files: the stream codec
// (frames, the event envelope, the index footer) over io.ReaderAt and byte
// slices, which needs no file system and is what the fuzz targets drive,
// and the per-file helpers (Open, Create, Scan) the log builds on.
//
// Salvage reads a damaged segment file past its damage, for tools (evlogctl
// dump and salvage): it validates frames with the same Reader, groups event
// frames into committed batches, resynchronises byte by byte after a bad
// frame, and tells a torn tail from corruption by the rule recovery applies
// (ProvesDurable); a checksummed frame with invalid content is never torn.
//
// # Segment file
//
// A log is a sequence of segment files, each holding a contiguous range of
// seqs. All integers are little-endian. All checksums are CRC32-Castagnoli.
//
//	+--------------------+  offset 0
//	| header (64 bytes)  |  magic "evlogseg", version, flags, log ID,
//	+--------------------+  first seq, generation, created, mark key, CRC
//	| event frame        |  \
//	| event frame        |   | one batch: its events, then a commit frame
//	| commit frame       |  /
//	| mark frame         |  after an fsync: the file is durable up to here
//	| ...                |
//	+--------------------+  RecordsEnd        (sealed segments only:)
//	| postings frames    |  per stream: offsets and sizes of its frames
//	| block frames       |  stream entries sorted by (hash, name), 16 per block
//	| ID table frame     |  v3, optional: (IDHash, seq) of the events with an ID
//	| summary frame      |  sparse seq/time index, block directory, bloom filter
//	|                    |  (v3: + ID table offset u64, length u32)
//	| trailer (64 bytes) |  magic "evlogidx", ranges, counts, CRC
//	+--------------------+
//
// Header (see Header):
//
//	off size field
//	  0    8 magic "evlogseg"
//	  8    2 format version (3; 1 and 2 are still read)
//	 10    2 flags (bit 0: compressed, by compaction; bit 1: strict,
//	           version 2, created by a SyncAlways writer; see mark.go)
//	 12    4 header size (64)
//	 16   16 log ID (random, fixed at creation)
//	 32    8 seq of the first event
//	 40    8 generation (0 when appended; a rewrite gets a higher one)
//	 48    4 v2: creation time, unix seconds (informational)
//	 52    8 v2: mark key (random, fixed at the segment's creation)
//	 48    8 v1: creation time, unix ns (informational)
//	 56    4 v1: reserved, zero
//	 60    4 CRC32C of bytes 0..59
//
// Frame (see AppendFrame, Reader):
//
//	+-----------+-----------+---------+=================+
//	| CRC32C u32| length u32| kind u8 | payload         |
//	+-----------+-----------+---------+=================+
//	 0           4           8         9
//	The CRC covers the length, the kind and the payload. length <= 64 MiB.
//
// Kinds: 1 event, 2 commit, 3 postings, 4 block, 5 summary, 6 zblock,
// 7 zmap, 8 mark (version 2), 9 ID table (version 3, footer only), 10 name
// block (version 4, footer only). An event payload is one msgpack array (see
// AppendEnvelope):
//
//	[seq, stream, version, type, schema_version, id, time_unix_ns, meta, data]
//	 uint str     uint     str   uint            str int           map  bin
//	                                                               |nil
//
// Decoders accept arrays with more elements and skip them, so a later
// release can add trailing fields without a new format version.
//
// A commit frame (20-byte payload: first seq u64, count u32, durable end
// u64) ends every batch: a batch whose commit frame is missing or invalid
// is not committed. Durable end is the offset up to which the writer knew
// the file to be fsynced when it wrote the batch. In version 1 recovery
// uses it to tell a torn tail (everything after the bad frame was written
// after the last fsync) from corruption (a later batch was written after
// the bad frame had been fsynced); but bytes inside an event payload can
// imitate a commit frame, and nothing records the last fsyncs. In version
// 2 commit frames prove nothing: marks do. In a compacted segment
// (generation > 0) commit frames were copied from other files and their
// durable ends refer to those.
//
// A mark frame (version 2; 16-byte payload: durable end u64, tag [8]byte)
// is appended right after each fsync of the newest segment — every group
// under SyncAlways, Sync, the SyncInterval tick, Close, and the fsync at
// Open — before the appends or the Sync it covers return; it is made
// durable by the next fsync (Close fsyncs it). Its durable end is its own
// offset: every byte before it had been fsynced. It sits between batches,
// never inside one. Its tag is the first 8 bytes of HMAC-SHA256 keyed by
// the header's mark key over the log ID, first seq, generation, the mark's
// offset and its durable end: only the writer of the file can make one, so
// bytes inside an event payload never pass for a mark (see ProvesDurable).
// Recovery calls an invalid frame of the newest segment at offset X
// corruption when a mark after X with a valid tag records a durable end
// beyond X, and a torn tail otherwise. Compaction drops marks (a sealed
// segment's trailer says all there is to say).
//
// A compressed segment (header flag bit 0, written only by compaction,
// always sealed) stores the same record frames in zblock frames (kind 6:
// one zstd frame of up to ZBlockSize consecutive record bytes, at most
// MaxZBlock; boundaries fall anywhere), followed at the records end by a
// zmap frame (kind 7: u32 count, then per block frame offset u64, frame
// size u32, record bytes u32; the blocks are contiguous from HeaderSize to
// the records end). Index offsets are logical — into the uncompressed
// records as if they started at HeaderSize — so readers work on a logical
// view (Segment.Records). See compressed.go and testdata/v2/compressed.seg.
// The view decompresses each block once into a BlockCache (bounded, least
// recently used first out; a log shares one among its segments, see
// Segment.SetBlockCache), never caches a block that fails its checksum or
// its decompression, and decompresses the next blocks of a sequential
// reader ahead of it in the background.
//
// The footer of a sealed segment lets a reader find one stream's events
// without scanning: the summary (read once and cached) holds a bloom
// filter over the stream names, a directory of stream blocks (first hash,
// offset, length) and a sparse index (every 256th event's seq, offset and
// time); a block holds entries (hash u64, first version u64, count u32,
// postings offset u64, postings length u32, name length u16, name); a
// postings frame holds a uvarint count then (offset delta, frame size)
// uvarint pairs. The stream hash is 64-bit FNV-1a. In version 3 the
// summary ends with the offset (u64) and length (u32, header included) of
// the ID table frame, both 0 when there is none; the table is a u32 count
// then (IDHash u64, seq u64) entries sorted by (hash, seq), one per event
// carrying an ID (IDHash: 64-bit FNV-1a, the same in every process; see
// Segment.IDTable). A footer has no table when its header is of version 1
// or 2, when the sealed index did not see every ID (resumed from a
// checkpoint) or when the table would not fit in a frame: no table means
// "read the records for IDs", never "no IDs".
//
// Version 4 adds name blocks (kind 10) after the stream blocks: the same
// entries, byte for byte, sorted by name, 64 per block (the last fewer),
// and ends the summary with their directory: u32 count (⌈streams/64⌉),
// then per block offset u64, length u32, first-name length u16 and the
// first name. The names with a prefix form one run of blocks, found by
// binary search over the first names (Summary.PrefixBlockBytes), so
// StreamsWithPrefix (and with it Log.Category and the stream-prefix
// filters) reads those blocks only; in older segments it reads every
// stream block. Lookup by exact name still uses the bloom filter and the
// hash-ordered blocks.
//
// Trailer (see Trailer): magic "evlogidx", records end u64, summary offset
// u64, summary length u32, count u32, last seq u64, first time i64, last
// time i64, new streams u32, CRC32C over the header's first 60 bytes
// followed by the trailer's first 60 (binding it to its file). Open reads only the
// header and trailer of a sealed segment.
//
// # Checkpoint file
//
// NAME.ckpt (see checkpoint.go and docs/FORMAT.md, "Checkpoints") is the
// index of the committed events of the active segment NAME.seg before an
// offset P it was fsynced through: a 64-byte header (magic "evlogckp",
// version 2, flags, stream count, CRC32C of the segment's 4 KiB before P,
// an HMAC tag keyed by the segment's mark key, CRC), then exactly a
// sealed segment's footer without an ID table, whatever the segment's
// version: in checkpoint version 1 a version 2 footer, in checkpoint
// version 2 (written since segment version 4) a version 4 footer, with
// name blocks and a zero ID table reference — postings frames (offsets
// in the segment), block and name block frames and summary frame
// (offsets in the checkpoint file), and a
// trailer whose records end is P and whose CRC covers the segment's
// header. OpenCheckpoint and Check read the header, the trailer and the
// window (O(1) bytes); NewIndexFrom builds an Index on top of it that
// reads postings on use, and Scan with ScanOptions.Checkpoint resumes at
// P. Damage found in its frames after it was opened is answered by
// scanning the segment's prefix (never trusted past its checksums). It is
// a file of its own, so no event payload can imitate it; it is never
// required. Its tag makes it proof, though: a segment shorter than the
// P of an authentic checkpoint, or whose window no longer matches, lost
// data that had been fsynced, and Check reports that as corruption of
// the segment (ErrCorrupt), not as a checkpoint to ignore.
//
// # Versioning
//
// The constants marked "never change" in format.go are the wire format.
// A reader rejects a format version above FormatVersion ("upgrade evlog")
// and must decode every older one; a change of layout gets a new version
// and golden files under testdata/v<N>/. Version 2 (marks, the mark key in
// the header) is written by every segment created since. A version 1
// segment never gets a mark (a version 1 reader would take it for a torn
// tail): a writer that opens a log whose newest segment is of version 1
// first seals it with a roll, or, when it holds no event, replaces it by a
// segment of the current version (an atomic rename). Version 3 (the ID table) changed
// only the footer: a writer keeps appending to a version 2 active segment
// and seals it with a version 2 footer (AppendFooterAt follows the
// header's version); segments created since are of version 3. Version 4
// (the name blocks) likewise changed only the footer: a version 2 or 3
// active segment is sealed with its own version's footer; segments
// created since are of version 4. Compaction writes the current version.
package segment
