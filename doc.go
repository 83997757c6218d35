// Package evlog is an embedded, file-based event log for event sourcing.
//
// Applications append immutable events to streams and rebuild state by
// replaying them. Events are msgpack-encoded into append-only,
// CRC32C-checksummed segment files in one directory; a per-segment index
// lets one stream be read (forwards or backwards) and the streams be
// listed without scanning the log, and a time index
// answers "what was the last event at or before T" without scanning either.
//
//	log, err := evlog.Open(dir, evlog.Options{})
//	items := evlog.Typed[Item](log)
//	pos, err := items.Append(ctx, "cart-42", evlog.ExpectVersion(3),
//		evlog.Event[Item]{Type: "item_added", Data: Item{Name: "sword"}})
//	for ev, err := range items.Stream(ctx, "cart-42", 1) { … }
//	for ev, err := range log.StreamBackward(ctx, "cart-42", 0) { … } // newest first
//	for st, err := range log.Streams(ctx, "cart-") { … }
//	seq, err := log.SeqAt(ctx, threePMYesterday)
//
// # Event types and schema versions
//
// A Registry is the one list of an application's event types: name, Go
// payload type, current schema version, upcasters (Register). A typed view
// over it (Typed[E] with WithRegistry, E any or an interface of the
// payload types) appends events of every registered type, stamping each
// one's Type and SchemaVersion from its Go type, and reads each back as its
// own Go type after upcasting; CodecFor[E] is the same as an
// aggregate.Codec and a projection decoder. An unregistered type is an
// error matching ErrUnknownType, or an Unknown with KeepUnknown.
//
//	reg := evlog.NewRegistry()
//	evlog.MustRegister[ItemAdded](reg, "item_added", 2, evlog.Upcast{Type: "item_added", From: 1, Fn: v1toV2})
//	evlog.MustRegister[ItemRemoved](reg, "item_removed", 1)
//	items := evlog.Typed[any](log, evlog.WithRegistry(reg))
//	_, err = items.Append(ctx, "inventory-alice", evlog.ExpectAny, evlog.Event[any]{Data: ItemAdded{Name: "sword"}})
//	for ev, err := range items.Subscribe(ctx, 1) { … } // ev.Data is an ItemAdded or an ItemRemoved
//
// Every typed view stamps the schema version of what it writes: a
// registry entry's, else the one the payload type declares
// (SchemaVersioned), else the newest version the view's upcasters produce
// for the event type. Appending at an older version — which every read
// would upcast as if it were the old shape — fails at append time with
// ErrSchemaVersion and writes nothing.
//
// # Model
//
// Every event has a global Seq (1-based, contiguous), a Version within its
// Stream (1-based, contiguous), a Type, a SchemaVersion for its payload, an
// optional caller-supplied ID, a small Meta map, a recorded Time and a
// msgpack payload. Recorded times never decrease in seq order: events
// without a Time are stamped from Options.Clock (once per batch) and
// clamped to the log's last time; an explicit earlier Time is refused with
// ErrTimeBackwards, and one more than Options.MaxClockSkew (default 1
// minute) ahead of the clock with ErrFutureTime (it would pin every later
// event's time). So "the state at T" is exactly the events with seq up to
// SeqAt(T). Stream names and types are printable UTF-8 (no control, line
// separator or bidirectional formatting characters; docs/FORMAT.md,
// "Names").
//
// # Durability
//
// Append and AppendBatch are atomic: all events of a call become visible and
// durable together, or none do; a crash mid-write leaves none of them after
// recovery, and readers never see part of a batch. What a successful
// Append promises depends on Options.Sync:
//
//   - SyncAlways (the default): Append returns nil only after fsync (on
//     macOS, F_FULLFSYNC) of the segment holding the batch has completed;
//     a segment file and its directory entry are made durable (file and
//     directory fsync) before any event in it is acknowledged. After a
//     process crash or a power loss, every acknowledged event is present
//     and unchanged. Concurrent appenders share fsyncs (group commit).
//     The writer's own reads see a batch once it is durable; readers in
//     other processes see it once the mark recording that fsync is
//     written, just before Append returns.
//   - SyncInterval(d): Append returns once the batch is written to the
//     operating system; an fsync follows within d (a timer while the writer
//     is idle, a check between groups of appends while it is busy, so the
//     bound holds under load). A process crash loses nothing acknowledged;
//     a power loss or kernel crash can lose the batches acknowledged in the
//     last d (plus the group being written and the fsync in flight), never
//     part of a batch. Readers, in this process or another, see a batch
//     once it is written (and acknowledged).
//   - SyncNever: as SyncInterval without the background fsync: only Sync,
//     Close, a segment roll and saving a snapshot make events durable; a
//     power loss can lose everything appended since the last of those.
//
// Readers in other processes (OpenReadOnly, evlogctl's read-only commands)
// serve what the writer has acknowledged: under SyncAlways only what it
// recorded on disk as durable (the mark it writes after each fsync, before
// the appends it covers return; the segment header and each mark say
// whether the writer runs SyncAlways), so they never serve an event before
// its fsync returned; under the other modes every committed batch, as the
// writer acknowledges them. A read-only log's DurableSeq is the last seq
// it serves. Segments of format version 1 carry no marks: their committed
// batches are served.
//
// A write or fsync error puts the writer in a failed state: that Append and
// every later one return an error matching ErrWriterFailed; nothing is
// retried (after a failed fsync the page cache cannot be trusted).
// Reopening the log runs recovery. An out-of-space error (ENOSPC) on the
// write of a batch fails only that batch when its partial bytes could be
// removed; appends resume once space is freed. Under SyncAlways an
// ENOSPC on the small mark written after a group's fsync fails nothing:
// the group is durable and this process sees it, readers in other
// processes serve it once a later mark records it (the next group's, a
// Sync's, Close's, or, on an idle log, the writer's own timed retry, at
// most about a second after space comes back), and meanwhile a
// snapshot Save, Subscription.Ack, Backup and Close fail matching
// syscall.ENOSPC rather than persist a seq those readers do not serve
// (see SyncAlways).
//
// The same holds for the directory, which the segments, checkpoints,
// subscription files and snapshots share: once any directory fsync of it
// fails in this process (a roll's, a checkpoint's, Compact's, a
// subscription's, the snapshot store's), it may have lost for good any
// directory change pending then (fsyncgate), and no later directory fsync
// proves anything. The writer fails at the next request it takes (every
// later Append, Sync and Close error matches ErrWriterFailed and
// ErrDirSyncFailed) and never rolls; Compact, Subscription.Ack,
// DeleteSubscription and Log.Snapshots' Save, Prune and Remove refuse and
// change nothing. The call during which the fsync failed returns an error
// matching ErrDirSyncFailed and the failure's cause too. Check the disk,
// then restart the machine or remount the file system before reopening
// the log (see ErrDirSyncFailed).
//
// An Append or Sync that fails with ErrWriterFailed has an unknown
// outcome: its batch may have reached the disk before the failure (a
// failed fsync says nothing about what the disk kept), so after reopening
// it may or may not be present. Retry with the same event IDs: an append
// whose events' IDs the log already holds writes nothing (see Log.Append,
// "Idempotency").
//
// After every fsync of the newest segment (each group under SyncAlways,
// Sync, the SyncInterval tick, Close, and Open) the writer appends a mark
// frame recording that the file is durable up to there, before the appends
// or the Sync covered return; the next fsync makes the mark durable, and
// Close fsyncs it. Damage to data a durable mark covers is corruption. The
// limit of detection, exactly: after a power loss or kernel crash (not a
// process crash, which keeps the mark in the page cache), the bytes
// fsynced since the last mark that reached the disk — at most the last
// group under SyncAlways, the appends up to the last Sync under SyncNever,
// the last interval under SyncInterval — cannot be told from a torn write
// if the disk also damaged them, and are truncated as a torn tail; so are
// data never fsynced, and the end of a newest segment that was cut short
// past the end of its checkpoint (or that has none). A checkpoint is
// written only after an fsync and records the segment durable through
// its end: a segment shorter than that, or changed before it, lost
// acknowledged, durable data, which no crash does — corruption. A torn
// tail is data not recorded as durable, which is not the same as never
// acknowledged. Damage anywhere else is reported as corruption, never
// repaired.
//
// # Recovery
//
// Open takes an exclusive lock (flock on DIR/LOCK; a second writer gets
// ErrLocked at once). LOCK must never be removed or replaced: the lock
// belongs to the file, so a writer started afterwards would lock a new one.
// A writer checks at every segment roll that LOCK still names the file it
// locked and fail-stops with ErrLockLost if not. Open then reads each sealed segment's header and trailer
// only, and of the newest segment its checkpoint (the index of the prefix
// the writer had fsynced when it last wrote one: at Close, and every
// SegmentSize/2 bytes) and scans only what follows it — after a clean
// Close, nothing; without a usable checkpoint, all of it. A torn tail of the newest segment
// (an incomplete batch or frame, or garbage, that no mark or checkpoint
// records as durable) is truncated, and reported through Recovery and
// Options.Logger.
// A newest segment no longer than a header and without a valid one is
// removed only after an unsealed segment (a roll interrupted before the
// seal, when it cannot have held an event). A checksum failure elsewhere —
// in a sealed segment's header, trailer or index, or before the durable
// end a mark records — fails with an error matching ErrCorrupt, a
// *CorruptError naming the file and the offset of the first invalid frame. Sealed segments' records are
// checked on every read (and by `evlogctl verify`): a bad record is an
// ErrCorrupt error from the read, never skipped. OpenReadOnly takes no
// lock and never modifies, creates or removes anything (its snapshot store
// is read-only); tools that write snapshots beside a writer open a
// SnapshotWriter (OpenSnapshotWriter), whose store alone may write.
//
// Recovery validates the whole directory before it removes anything
// (temporaries, segments superseded by a compaction, which it removes only
// after verifying the compacted segment): a segment whose header disagrees
// with its name or that belongs to another log is ErrCorrupt, and nothing
// is deleted. Only regular files are part of a log: a symbolic link, FIFO,
// device or directory named like a log file is never opened or deleted
// (RecoveryReport.Strangers lists it).
//
// docs/FORMAT.md specifies the files, the recovery algorithm and the
// assumptions evlog makes about the disk and the file system.
//
// # Backups
//
// Log.Backup copies the log while appends go on into a directory that is
// consistent at one durable seq S (every event up to S, nothing after,
// whole batches), with the snapshots at or before S and a manifest written
// last; FollowBackup keeps such a backup within an interval of the source;
// VerifyBackup checks one without a writer; Restore restores one into a
// new directory, to its end or to a point in time (ToSeq, ToTime: always a
// batch boundary), as a new timeline with a new log ID. docs/BACKUP.md
// specifies them.
//
// # Platforms
//
// Linux and macOS, on local file systems. Network file systems (NFS, SMB)
// are not supported: their locking and fsync semantics do not give the
// guarantees above.
//
// # Subscriptions
//
// Subscribe yields the whole log, then live appends; SubscribeFiltered and
// EventsFiltered yield only the events a Filter matches (event types,
// stream prefixes, categories: a stream's category is its name up to the
// first '-'), in seq order, with no gap and no duplicate in the filtered
// sequence. A log opened with OpenReadOnly follows its writer by itself,
// polling every Options.FollowInterval.
//
// Log.Subscription(name, filter) is a durable subscription: Ack(seq)
// stores its position (the last handled seq) in the log directory as
// NAME.sub — written to a temporary, fsynced, renamed, directory fsynced —
// and Events resumes right after it, after a crash too. Delivery is at
// least once (what was handed over but not acknowledged comes again); the
// projection runner's checkpoints, stored with the projection's state, are
// the exactly-once path. Only the writer's process acknowledges.
// Position files are not part of the log: recovery, Verify and compaction
// ignore them, and backups do not copy them (docs/FORMAT.md).
//
// # Deletion and retention
//
// DeleteStream (soft: the stream reads as empty and is written again from
// its next version), TruncateStream (versions below N read as gone) and
// TombstoneStream (hard: appends fail with ErrStreamDeleted) append a
// marker event to the system stream DeletionsStream, durable like any
// append; Options.Retention bounds each category's events by age and count.
// Every reader honours both at once, and Compact then replaces the gone
// events of sealed segments by placeholders without payload. Seqs are
// never renumbered: readers see holes, and the no-gap guarantee of
// Subscribe is about the events still visible. Snapshots, projection
// checkpoints and cached aggregates from before a deletion are folded
// again (docs/FORMAT.md, "Deletion and retention").
//
// # Concurrency
//
// A Log is safe for concurrent use. Appends are sequenced by one writer,
// one group at a time: on the log's writer goroutine, or, when the log is
// idle, on the goroutine of the Append that found it so (a typed
// payload's EncodeMsgpack then runs there); reads run concurrently with
// it and with each other, and see the committed state as of their start.
package evlog
