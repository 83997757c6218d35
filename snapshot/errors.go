package snapshot

import (
	"errors"
	"fmt"
)

// ErrCorrupt is matched (errors.Is) by every error reporting a snapshot file
// that cannot be trusted: bad magic or checksum, a truncated or extended
// file, sizes over the caps, a payload that does not decompress to the
// declared size, or a format version this build does not read. Such errors
// are *CorruptError values naming the file. A corrupt snapshot is never
// fatal to replay: it falls back to an older snapshot or to the events.
var ErrCorrupt = errors.New("evlog/snapshot: corrupt snapshot")

// ErrNewerFormat is matched, besides ErrCorrupt, by the *CorruptError of
// a file whose header names a format version, or flags, newer than this
// build reads: a snapshot a newer evlog wrote (before a binary was rolled
// back), or damage this build cannot tell from one. Reads fall back as
// from any corrupt snapshot; Remove refuses to delete such a file.
var ErrNewerFormat = errors.New("evlog/snapshot: snapshot of a newer format")

// ErrNotFound is matched by errors reporting that no snapshot answers a
// request: none of that name at or before the target, or the file is
// missing, or it holds a different snapshot than the Meta asked for.
var ErrNotFound = errors.New("evlog/snapshot: snapshot not found")

// ErrTooLarge is matched by Save's error when the state is larger than
// Options.MaxRawSize (nothing was written), and by the *CorruptError of a
// read of a file whose header declares a state larger than the reader's
// MaxRawSize (which also matches ErrCorrupt; nothing was allocated for
// it): perhaps damage, perhaps a snapshot saved under a higher bound.
var ErrTooLarge = errors.New("evlog/snapshot: state too large")

// ErrExists is matched by Save's error when a snapshot file for that name
// and seq already exists. Nothing was written; the existing file is left
// as it is.
var ErrExists = errors.New("evlog/snapshot: snapshot already exists")

// ErrInvalid is matched by errors about malformed arguments (an empty or
// oversize name, a zero seq or time, bad options or prune policy). Nothing
// was read or written.
var ErrInvalid = errors.New("evlog/snapshot: invalid argument")

// ErrDirSyncFailed is matched by the error of a Store's directory fsync
// that failed (Save's after its rename, Prune's and Remove's before and
// after their removals, CleanTemps') and, from then on, by every Prune and
// Remove of that Store: they refuse, before reading anything, and remove
// nothing. The Store remembers the failure for as long as it lives, as
// the log's writer stops at a failed fsync.
//
// Why: a directory fsync that failed may have lost the directory changes
// it was to write (a snapshot renamed into place, a removal) for good. On
// Linux the kernel may mark them clean after the write error
// ("fsyncgate"), so a later directory fsync succeeds without writing them,
// while listings, served from the kernel's cache, still show them. No
// later fsync, by this Store or any other, proves such a snapshot is on
// disk, and removing an older one in its favour could lose both to a
// power loss.
//
// What to do: check the disk (the kernel log, free space, the device's
// health) and fix what failed. Then restart the machine, or unmount and
// mount the file system again, before pruning or removing snapshots: only
// then does a listing read the directory from the disk, so that a Store
// opened afterwards removes only in favour of snapshots that are really
// there (one whose entry was lost is simply missing, and the older ones it
// was to replace are kept). Reopening the Store or restarting the process
// is not enough: it forgets the failure (it is remembered in memory, by
// this Store only), but its listings still come from the kernel's cache,
// which may show entries the disk does not have. For the same reason
// another Store over the same directory (another Open, a SnapshotWriter,
// another process) does not know of the failure, unless its
// Options.DirSyncFailed reports it: the store of evlog.Log.Snapshots
// shares the log's memory of failed directory fsyncs, so a failure of
// the log's writer, compaction or subscriptions makes it refuse too (and
// one of its own stops them).
//
// Save goes on working: a snapshot it renames into place after the failure
// is durable once its own directory fsync succeeds, which is what a nil
// error from Save reports. A snapshot whose Save failed may be listed and
// loaded while it lasts (List, Load), but a retried Save of it reports
// ErrExists although it may not be durable: save it at a new seq.
var ErrDirSyncFailed = errors.New("evlog/snapshot: a directory fsync failed")

// CorruptError reports a corrupt snapshot file. It matches ErrCorrupt.
type CorruptError struct {
	// File is the base name of the snapshot file.
	File string
	// Offset is the byte offset in File where the problem was found (for
	// a file of the wrong length, its length or the declared one).
	Offset int64
	// Reason says what is wrong.
	Reason string
	// Err is the underlying error, if any (for example the decompressor's).
	Err error
	// Newer: the header names a format version or flags newer than this
	// build reads (the error also matches ErrNewerFormat).
	Newer bool
}

func (e *CorruptError) Error() string {
	msg := fmt.Sprintf("evlog/snapshot: corrupt snapshot %s at offset %d: %s", e.File, e.Offset, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg + "; replay falls back to an older snapshot or the events; remove the file or run evlogctl verify"
}

// Is makes errors.Is(err, ErrCorrupt) true, and errors.Is(err,
// ErrNewerFormat) for a newer format.
func (e *CorruptError) Is(target error) bool {
	return target == ErrCorrupt || target == ErrNewerFormat && e.Newer
}

// Unwrap returns the underlying error.
func (e *CorruptError) Unwrap() error { return e.Err }

// invalidf returns an error matching ErrInvalid.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
