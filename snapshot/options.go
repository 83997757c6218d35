package snapshot

import (
	"context"
	"log/slog"
	"math"

	"github.com/klauspost/compress/zstd"
)

// Defaults and limits of Options.
const (
	// DefaultLevel is the zstd level used when Options.Level is zero:
	// zstd.SpeedDefault (about zstd level 3). On msgpack-encoded state
	// (BenchmarkSave and BenchmarkLoad, a 1-million-entry map) it loads
	// 20-30% faster than SpeedFastest, whose files are also a little
	// larger. SpeedFastest saves up to twice as fast. SpeedBetterCompression
	// and SpeedBestCompression spend 2 and 7 times as long saving for files
	// 4-6% smaller. Snapshots are written in the background but read on
	// every replay, so the load speed decides.
	DefaultLevel = zstd.SpeedDefault
	// DefaultMaxRawSize is the MaxRawSize used when Options.MaxRawSize is 0.
	DefaultMaxRawSize = 64 << 20
	// MaxRawSizeLimit is the largest accepted Options.MaxRawSize.
	MaxRawSizeLimit = min(16<<30, math.MaxInt-maxBlockSize-1<<20)
)

// Options configures a Store. The zero value gives the documented defaults.
// Open copies it; the caller's value is never modified.
type Options struct {
	// Level is the zstd compression level of snapshots written by Save:
	// zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression or
	// zstd.SpeedBestCompression. Zero means DefaultLevel. Reading accepts
	// every level.
	Level zstd.EncoderLevel
	// MaxRawSize caps the size of a state, in bytes. Save refuses a larger
	// state (ErrTooLarge), and reading treats a file declaring a larger one
	// as corrupt before allocating anything for it, so it also bounds the
	// memory a hostile or damaged file can make a read take. Zero means
	// DefaultMaxRawSize (64 MiB); at most MaxRawSizeLimit.
	MaxRawSize int64
	// Logger receives warnings about skipped snapshots and leftover
	// temporaries, and debug records of saves and removals. Nil discards.
	Logger *slog.Logger
	// BeforeSave, if set, is called by Save with the snapshot's Seq before
	// anything is written, so the log can make itself durable through that
	// seq, and the mark that lets a reader in another process serve it: a
	// snapshot must never outlive the events it folds, even when the log
	// syncs lazily, nor be durable before a reader can serve them. An
	// error aborts the Save and is returned.
	//
	// A Store knows no log: without BeforeSave, Save makes its own file
	// durable and promises nothing about the events the snapshot folds
	// (it cannot even tell whether Seq is beyond the end of the log).
	// After a power loss such a snapshot may claim events the log lost;
	// replay then passes it over while its Seq is beyond the end of the
	// log, and once the log has grown past it again tells it from the new
	// events at its Seq only by the Anchor (set Anchor too) or, without
	// one, by recorded time. So never Save a snapshot of an evlog log
	// through a Store opened directly: use evlog.Log.Snapshots (the
	// writer) or evlog.OpenSnapshotWriter (a tool beside it), which set
	// BeforeSave and Anchor. Stores opened directly are for reading (as
	// evlogctl's read-only commands, backup verification and restore
	// planning use them, over a read-only FS) and for tests.
	BeforeSave func(ctx context.Context, seq uint64) error
	// Anchor, if set, is called by Save (after BeforeSave) with the
	// snapshot's Seq and returns AnchorOf the log's event at that seq, or
	// 0 when the log does not yield it; Save records it in the file (see
	// Meta.Anchor). Without it, or when it returns 0, the snapshot
	// records the caller's Meta.Anchor (0: none). An error aborts the
	// Save and is returned.
	Anchor func(ctx context.Context, seq uint64) (uint64, error)
	// DirSyncFailed, if set, is called by Prune and Remove before they
	// read anything. A non-nil error says that a directory fsync of the
	// store's directory failed somewhere else (another user of the
	// directory: the log's writer, compaction, subscriptions), which may
	// have lost directory changes for good that no later fsync proves
	// durable (see ErrDirSyncFailed): they then refuse, as after a
	// failure of the Store's own directory fsyncs, with an error
	// matching ErrDirSyncFailed and the returned error, and remove
	// nothing. evlog.Log.Snapshots sets it to the log's own record, so
	// that one failure anywhere in the log directory stops whatever
	// relies on a later directory fsync. Nil: only the Store's own
	// failures count.
	DirSyncFailed func() error
}

// Validate reports whether o is usable. The error matches ErrInvalid.
func (o Options) Validate() error {
	if o.Level != 0 && (o.Level < zstd.SpeedFastest || o.Level > zstd.SpeedBestCompression) {
		return invalidf("Options.Level %d is not a zstd level (use zstd.SpeedFastest to zstd.SpeedBestCompression, or 0 for %v)",
			int(o.Level), DefaultLevel)
	}
	if o.MaxRawSize < 0 || o.MaxRawSize > MaxRawSizeLimit {
		return invalidf("Options.MaxRawSize %d outside [0, %d]", o.MaxRawSize, int64(MaxRawSizeLimit))
	}
	return nil
}

// withDefaults returns o with its zero fields set to the defaults.
func (o Options) withDefaults() Options {
	if o.Level == 0 {
		o.Level = DefaultLevel
	}
	if o.MaxRawSize == 0 {
		o.MaxRawSize = DefaultMaxRawSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
