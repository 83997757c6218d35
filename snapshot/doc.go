// Package snapshot stores zstd-compressed snapshots of encoded state.
//
// A snapshot is the encoded state of one named subject — an aggregate
// instance ("cart/cart-42"), a projection ("projection/top-items") or a
// whole-log fold ("stats") — as of a position in one log: the Seq and the
// recorded Time of the last event folded into it. The state is opaque
// bytes (the caller encodes it, with msgpack in evlog); this package
// compresses it, frames it with checksums and keeps it durable in a flat
// directory (an internal/vfs FS), one file per snapshot.
//
// Snapshots are an optimisation: replaying the events always gives the same
// state, so a snapshot that is missing, unreadable or corrupt is skipped
// (with a warning) and replay falls back to an older snapshot or to the
// events. Nothing here ever repairs, renames or quarantines a file on a
// read path.
//
// # Reading and trust
//
// List reads only headers and returns what they say: every listed entry has
// a header whose own checksum matched and a file of the size the header
// declares, but its payload has not been read; Candidates visits the same
// entries of one subject, newest first, plus the files whose header cannot
// be read. Load and Verify read the whole file, check the trailer checksum
// and decompress the payload (bounded by Options.MaxRawSize) before they
// report success, so a listed entry whose payload is damaged is rejected
// with an error matching ErrCorrupt, and replay falls back to the next
// candidate.
//
// # File names
//
// A snapshot of subject Name at Seq lives in the file
//
//	<16 lowercase hex digits: FNV-1a 64 of Name>-<20 decimal digits: Seq>.snap
//
// for example "a1b2c3d4e5f60718-00000000000000001234.snap" (see
// FormatFileName and ParseFileName). The widths are fixed, so a lexical
// listing groups a subject's files together, ordered by Seq. The real Name
// is in the header and is always compared: two subjects whose names share
// a hash are never mixed up. Temporaries are the final name plus ".tmp".
//
// # File format, version 3
//
// All integers are little-endian. CRCs are CRC-32C (Castagnoli).
//
//	 0                   8       10      12              16
//	+-------------------+-------+-------+---------------+
//	| magic "evlogsnp"  | ver=3 | flags | header length |
//	+-------------------+-------+-------+---------------+
//	16                                  32        40        48
//	+-----------------------------------+---------+---------+
//	| LogID (16 bytes)                  |   Seq   |  Time   |
//	+-----------------------------------+---------+---------+
//	48              56        64               72      74       74+N     82+N    90+N     94+N = H
//	+---------------+---------+----------------+-------+--------+--------+--------+--------+
//	| SchemaVersion | RawSize | CompressedSize | N u16 | Name   | Anchor | Scope  | hdrCRC |
//	+---------------+---------+----------------+-------+--------+--------+--------+--------+
//	H                               H+C       H+C+4
//	+-------------------------------+---------+
//	| payload: one zstd frame       | fileCRC |
//	| (C = CompressedSize bytes)    |         |
//	+-------------------------------+---------+
//
//	offset  size  field           meaning
//	0       8     magic           "evlogsnp"
//	8       2     version         format version, 3 (1, 2: see Versioning)
//	10      2     flags           reserved, 0 in versions 1 to 3
//	12      4     header length   H = 94 + N, the bytes from offset 0 through hdrCRC
//	16      16    LogID           the log the snapshot belongs to
//	32      8     Seq             last event folded in; ≥ 1
//	40      8     Time            that event's recorded time, Unix nanoseconds (int64, UTC)
//	48      8     SchemaVersion   owner's version (or hash) of the state shape and fold logic
//	56      8     RawSize         size of the decompressed state; ≤ Options.MaxRawSize
//	64      8     CompressedSize  C, size of the payload
//	72      2     N               length of Name in bytes; 1 ≤ N ≤ MaxNameLen
//	74      N     Name            the subject, UTF-8
//	74+N    8     Anchor          AnchorOf the event at Seq (0: not recorded)
//	82+N    8     Scope           digest of the subject's scope (0: not recorded)
//	90+N    4     hdrCRC          CRC-32C of bytes [0, 90+N)
//	H       C     payload         exactly one zstd frame decoding to RawSize bytes
//	H+C     4     fileCRC         CRC-32C of bytes [0, H+C): header and payload
//
// The Anchor (AnchorOf: a SHA-256-based digest of everything the log
// stores of the event at Seq; see docs/SNAPSHOT_FORMAT.md for its exact
// input) lets replay tell the event the state was folded up to from
// another event at the same seq and time, on a log whose tail was replaced
// (restored from an older copy, then appended to again). The log's store
// records it on every Save (Options.Anchor).
//
// The file is exactly H + C + 4 bytes long. The header checksum lets List
// trust a header without reading the payload; the file checksum covers
// everything before it, header included. The zstd frame must not use a
// dictionary, must be followed by nothing, and must declare a content size
// equal to RawSize; only a state under 256 bytes may have a frame without
// one (the zstd encoder leaves it out of such small frames). Frames evlog
// writes also carry zstd's own content checksum, which the decoder checks
// when present. Decoding stops at RawSize bytes: any more or fewer is
// corruption.
//
// # Versioning
//
// The wire constants never change. A change to the layout, to the meaning
// of a field or to the name hash is a new format version; writers write the
// newest, readers keep decoding every older one (golden files for each live
// under testdata/v<N>/) and reject a newer or unknown version, or any flag
// bit they do not know, as corrupt (upgrade evlog to read it).
//
// Version 4 is version 3 followed, after the Scope, by a u16 count K (1
// to MaxUnfolded) and K ranges of two u64 (From, To): Meta.Unfolded
// (H = 96 + N + 16K). Save writes version 4 only for a Meta with Unfolded
// ranges, version 3 otherwise.
//
// Version 2 is version 3 without the Scope (H = 86 + N, hdrCRC at 82+N);
// it reads with Scope 0 (not recorded: see Meta.Scope, and
// replay.ScopeMismatch for whom replay trusts such a snapshot).
// Version 1 is version 2 without the Anchor (H = 78 + N, hdrCRC at 74+N).
// It reads with Anchor 0, and replay then checks the snapshot against the
// log's event at Seq by recorded time (and stream) only, so a version 1
// snapshot taken on another history whose event at Seq has the same time
// is not told apart. The header
// length field lets a reader locate the header checksum before it
// interprets anything else.
//
// # Durability
//
// Save calls Options.BeforeSave(Seq) first, so that the log is durable
// through Seq, and a reader in another process serves it, before any
// snapshot that folds those events exists. The Store knows no log: that
// promise is BeforeSave's, and the log's stores (evlog.Log.Snapshots,
// evlog.OpenSnapshotWriter) set it; a Store opened without it promises
// only its own file's durability (see Options.BeforeSave). It then writes
// "<name>.tmp", fsyncs it, renames it to the final name and fsyncs the
// directory. A crash at any point leaves either no snapshot or a complete,
// durable one (plus, perhaps, a temporary, which CleanTemps removes), never
// a torn one under the final name. Prune and Remove fsync the directory
// before their first removal, so nothing is removed on the word of a
// snapshot whose directory entry is not durable; once a directory fsync
// of the Store has failed, which may have lost directory changes for good,
// they refuse (ErrDirSyncFailed). The long-form recovery story is in
// docs/FORMAT.md and docs/SNAPSHOT_FORMAT.md.
package snapshot
