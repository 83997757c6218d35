package evlog

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"sync"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

// SyncMode says when appended events are made durable (fsynced). See the
// package documentation for exactly what each mode can lose.
type SyncMode int64

const (
	// SyncAlways (the default) makes Append return only after an fsync
	// covering its batch has completed. Concurrent appenders share fsyncs
	// (group commit). After the fsync the writer writes a mark recording
	// it (docs/FORMAT.md, "Mark"), and only then makes the batch visible
	// and acknowledges it: readers in other processes (OpenReadOnly,
	// evlogctl) serve a batch only once a mark records it.
	//
	// When that mark cannot be written for lack of space, the append
	// still succeeds: its batch is durable, and this process sees it at
	// once (its reads, subscriptions, projections and aggregates: read
	// your writes). A reader in another process serves it only once a
	// later mark records it, which the writer writes at every
	// opportunity: the next group, an append that fails for lack of
	// space, Sync, Close, the next Open, and, while the writer is idle, a
	// timed retry (10 ms after the skip, then doubling up to one retry a
	// second while the disk stays full): such a reader serves the batch
	// at most about a second after space comes back, with no further
	// append, Sync or Close. Meanwhile nothing the log
	// persists claims the batch: a snapshot Save through Log.Snapshots
	// (projection checkpoints and aggregate snapshots stored there
	// included) and Subscription.Ack write the mark first and fail,
	// matching syscall.ENOSPC, while it cannot be written; Close then
	// fails the same way (the batch stays durable: the next writer's
	// Open records it).
	SyncAlways SyncMode = 0
	// SyncNever never fsyncs on its own: only Sync, Close, a segment roll and
	// a snapshot save make events durable. A crash (of the machine, not just
	// the process) can lose everything appended since the last of those.
	SyncNever SyncMode = -1
	syncBad   SyncMode = math.MinInt64
)

// SyncInterval fsyncs at most d after an append was written: on a timer
// while the writer is idle, and between groups of appends while it is busy
// (so the bound holds under load). A power loss can lose up to d (plus the
// group being written and the fsync in flight) of acknowledged appends. d
// must be positive.
func SyncInterval(d time.Duration) SyncMode {
	if d <= 0 {
		return syncBad
	}
	return SyncMode(d)
}

func (m SyncMode) String() string {
	switch {
	case m == SyncAlways:
		return "always"
	case m == SyncNever:
		return "never"
	case m > 0:
		return "interval " + time.Duration(m).String()
	}
	return "invalid"
}

// interval returns the background sync period (0 if none).
func (m SyncMode) interval() time.Duration {
	if m > 0 {
		return time.Duration(m)
	}
	return 0
}

// Options configure a Log. The zero value is a valid, safe configuration;
// every field documents its default. Open never modifies the caller's value.
type Options struct {
	// Sync says when appends are made durable. Default SyncAlways.
	Sync SyncMode

	// SegmentSize is the size at which the active segment is sealed and a
	// new one started. A segment may exceed it by one batch (a batch never
	// spans segments). A segment is also sealed earlier when its footer
	// would otherwise pass a bound of the format (tiny events in a large
	// segment: docs/FORMAT.md, "Bounds of a segment"). Default 64 MiB;
	// minimum 4 KiB; maximum 1 GiB.
	SegmentSize int64

	// MaxEventSize bounds the encoded size of one event (envelope and
	// payload). Default 1 MiB; maximum 16 MiB.
	MaxEventSize int

	// MaxBatchSize bounds the encoded size of one Append or AppendBatch
	// call. Default 16 MiB (at least MaxEventSize); maximum 64 MiB.
	MaxBatchSize int

	// Clock stamps the recorded time of events appended without one.
	// Default time.Now. Recorded times never decrease in seq order: a clock
	// that steps back is clamped to the log's last recorded time.
	Clock func() time.Time

	// MaxClockSkew bounds how far ahead of Clock an event's explicit Time
	// may be: an append with a Time later than Clock() + MaxClockSkew fails
	// with ErrFutureTime (a *FutureTimeError naming the event) and writes
	// nothing. Without the bound, one event stamped in the future would pin
	// the recorded time of every later event to it (times never decrease).
	// Times in the past (imports of old data) are not limited. 0 means the
	// default, DefaultMaxClockSkew (1 minute); NoClockSkewLimit (any
	// negative value) disables the check.
	MaxClockSkew time.Duration

	// Logger receives recovery reports (torn tails truncated, temporaries
	// removed) and writer failures. Default: discard.
	Logger *slog.Logger

	// Snapshot configures the snapshot store (Log.Snapshots): compression
	// level and the maximum state size (default 64 MiB). Its Logger and
	// BeforeSave are set by the log.
	Snapshot snapshot.Options

	// FollowInterval is how often Subscribe on a log opened with
	// OpenReadOnly looks for what the writer (another process) committed
	// since, by calling Refresh: a read-only subscription follows the
	// writer by itself, across rolls and compactions. Default 100 ms. A
	// writer's own subscriptions are woken by its appends and never poll.
	FollowInterval time.Duration

	// Perm is the permission of the files the log creates (segments,
	// snapshots, LOCK); a directory Open creates gets Perm plus search (x)
	// wherever Perm grants read. Default 0600 (directories 0700): only the
	// owner can read an event store that usually holds personal data. Use
	// 0640 to let the group read (and run read-only tools). The process
	// umask still applies; existing files and directories keep their modes.
	// It must grant the owner read and write and hold only permission bits.
	Perm fs.FileMode

	// BlockCacheSize bounds the memory, in decompressed bytes, of the
	// cache of blocks of compressed segments (written by Compact with
	// Compress) that the log's readers share: reading events of a
	// compressed segment decompresses their block (segment.ZBlockSize,
	// 64 KiB of records) once, and readers coming back to it (a stream
	// read again, events of one stream sharing blocks) find it there.
	// Least recently used blocks are evicted first. A sequential scan has
	// the next blocks decompressed ahead of it, in the background, whatever
	// the size. Default 64 MiB (DefaultBlockCacheSize); negative: no
	// shared cache (each segment keeps only its last few blocks). Plain
	// segments never use it: they are read through the OS page cache.
	BlockCacheSize int64

	// Retention bounds, per category (the key: a stream's name up to its
	// first "-"), how many events of each stream (MaxCount) and how old
	// events (MaxAge, against Clock) are kept. Events beyond either bound
	// read as gone at once, to every reader, and Compact removes their
	// payloads (see Log.DeleteStream and docs/FORMAT.md, "Deletion and
	// retention").
	//
	// Retention is recorded in the log (an event of RetentionStream), and
	// every process applies the settings the log records, not its own
	// option:
	//   - Open, nil: use what the log records (none if nothing is
	//     recorded: every event is kept).
	//   - Open, non-nil: the log's retention from now on. If it differs
	//     from the recorded settings (nil and empty both mean no
	//     retention), Open appends a new record and makes it durable
	//     (also under SyncNever) before it returns; an empty non-nil map
	//     records "no retention". A crash during Open leaves the old or
	//     the new settings recorded. The record carries the log's last
	//     recorded time: it never moves the log's time forward.
	//   - OpenReadOnly, nil: apply what the log records as of the view
	//     (Refresh picks up a new record). Non-nil: it must equal the
	//     recorded settings, else OpenReadOnly fails with a
	//     *RetentionMismatchError (ErrRetentionMismatch): only a writer
	//     changes a log's retention.
	// Log.RecordedRetention returns the recorded settings.
	Retention map[string]Retention

	// DedupeWindow bounds how far back an append's event IDs are looked
	// up (see Append, "Idempotency"): the IDs of the last DedupeWindow
	// events (by seq, from the newest). An event whose ID was last used
	// further back is not recognised: it is appended again. The writer
	// keeps a 64-bit hash and the seq of each ID in the window in memory,
	// about 20 to 36 bytes per ID (with a window, IDs that left it are
	// dropped lazily: up to twice the window may be held). Default 0: the
	// whole log. Negative is invalid.
	DedupeWindow int64
}

// Defaults and limits of Options.
const (
	DefaultSegmentSize    = 64 << 20
	MinSegmentSize        = 4 << 10
	MaxSegmentSize        = 1 << 30
	DefaultMaxEventSize   = 1 << 20
	MaxMaxEventSize       = 16 << 20
	DefaultMaxBatchSize   = 16 << 20
	DefaultFollowInterval = 100 * time.Millisecond
	MaxMaxBatchSize       = segment.MaxFramePayload
	DefaultPerm           = vfs.DefaultFilePerm // 0600
	DefaultBlockCacheSize = 64 << 20
	DefaultMaxClockSkew   = time.Minute
	// NoClockSkewLimit as Options.MaxClockSkew accepts explicit event
	// times however far in the future.
	NoClockSkewLimit time.Duration = -1
)

// Validate reports whether o is a usable configuration.
func (o Options) Validate() error {
	var errs []error
	if o.Sync == syncBad || o.Sync < SyncNever {
		errs = append(errs, errors.New("Sync: use SyncAlways, SyncNever or SyncInterval(d) with d > 0"))
	}
	if o.SegmentSize != 0 && (o.SegmentSize < MinSegmentSize || o.SegmentSize > MaxSegmentSize) {
		errs = append(errs, fmt.Errorf("SegmentSize %d: must be 0 (default %d) or between %d and %d", o.SegmentSize, DefaultSegmentSize, MinSegmentSize, MaxSegmentSize))
	}
	if o.MaxEventSize < 0 || o.MaxEventSize > MaxMaxEventSize {
		errs = append(errs, fmt.Errorf("MaxEventSize %d: must be 0 (default %d) or at most %d", o.MaxEventSize, DefaultMaxEventSize, MaxMaxEventSize))
	}
	if o.MaxBatchSize < 0 || o.MaxBatchSize > MaxMaxBatchSize {
		errs = append(errs, fmt.Errorf("MaxBatchSize %d: must be 0 (default %d) or at most %d", o.MaxBatchSize, DefaultMaxBatchSize, MaxMaxBatchSize))
	}
	if o.MaxBatchSize != 0 && o.MaxBatchSize < cmp.Or(o.MaxEventSize, DefaultMaxEventSize) {
		errs = append(errs, fmt.Errorf("MaxBatchSize %d is smaller than MaxEventSize", o.MaxBatchSize))
	}
	if o.FollowInterval < 0 {
		errs = append(errs, fmt.Errorf("FollowInterval %v: must be 0 (default %v) or positive", o.FollowInterval, DefaultFollowInterval))
	}
	if o.Perm != 0 && (o.Perm&^fs.ModePerm != 0 || o.Perm&0o600 != 0o600) {
		errs = append(errs, fmt.Errorf("Perm %#o: must be 0 (default %#o) or permission bits granting the owner read and write", o.Perm, DefaultPerm))
	}
	if err := validateRetention(o.Retention); err != nil { // deletion.go
		errs = append(errs, err)
	}
	if o.DedupeWindow < 0 {
		errs = append(errs, fmt.Errorf("DedupeWindow %d: must be 0 (the whole log) or a positive number of events", o.DedupeWindow))
	}
	if err := o.Snapshot.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("evlog: invalid options: %w", err)
	}
	return nil
}

// resolve validates o and returns it with the defaults applied: done once
// per open, before anything touches the file system.
func (o Options) resolve() (Options, error) {
	if err := o.Validate(); err != nil {
		return Options{}, err
	}
	return o.withDefaults(), nil
}

// withDefaults returns a copy of o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.MaxEventSize == 0 {
		o.MaxEventSize = DefaultMaxEventSize
	}
	if o.MaxBatchSize == 0 {
		o.MaxBatchSize = max(DefaultMaxBatchSize, o.MaxEventSize)
	}
	if o.Perm == 0 {
		o.Perm = DefaultPerm
	}
	if o.Clock == nil {
		o.Clock = time.Now
	} else {
		// Appenders read it (MaxClockSkew) beside the writer (stamping):
		// the caller's clock need not be safe for concurrent use.
		o.Clock = serialClock(o.Clock)
	}
	if o.FollowInterval == 0 {
		o.FollowInterval = DefaultFollowInterval
	}
	if o.BlockCacheSize == 0 {
		o.BlockCacheSize = DefaultBlockCacheSize
	}
	if o.MaxClockSkew == 0 {
		o.MaxClockSkew = DefaultMaxClockSkew
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Retention = maps.Clone(o.Retention) // the caller may change theirs later
	return o
}

// serialClock returns clock with its calls serialised.
func serialClock(clock func() time.Time) func() time.Time {
	var mu sync.Mutex
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return clock()
	}
}
