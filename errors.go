package evlog

import (
	"errors"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

// Errors shared with the lower layers, re-exported so that embedders need
// import only this package. Match them with errors.Is.
var (
	// ErrVersionConflict: a stream was not at the version an append
	// expected; nothing of the append was written. The error is a
	// *ConflictError carrying the actual version.
	ErrVersionConflict = event.ErrVersionConflict
	// ErrInvalid: an event or batch is malformed or too large; nothing was
	// written.
	ErrInvalid = event.ErrInvalid
	// ErrCorrupt: damaged data in the log (a *CorruptError names the file
	// and offset). evlog never skips it; see `evlogctl verify`.
	ErrCorrupt = segment.ErrCorrupt
	// ErrLocked: another writer (this or another process) holds the log
	// directory's lock. Use OpenReadOnly to read beside it.
	ErrLocked = vfs.ErrLocked
	// ErrLockLost: the log directory's LOCK file was removed or replaced
	// while a writer held it, so it no longer keeps a second writer out.
	// The writer fail-stops (with ErrWriterFailed) at its next segment roll
	// or compaction. LOCK must never be removed.
	ErrLockLost = vfs.ErrLockLost
	// ErrDirSyncFailed: a directory fsync of the log directory failed, in
	// this process, by anyone: the writer (a roll, a checkpoint),
	// Compact, a subscription's Ack or DeleteSubscription, or the
	// snapshot store of Log.Snapshots. They share the directory, and the
	// failure may have lost for good any of their directory changes
	// pending at the time (fsyncgate: a later directory fsync succeeds
	// without them), so from then on nothing relies on a directory fsync:
	// the writer fails (every append, Sync and Close error matches
	// ErrWriterFailed and ErrDirSyncFailed, and the failure's cause),
	// Compact, Subscription.Ack, DeleteSubscription and the store's Save,
	// Prune and Remove refuse and change nothing. The call during which
	// the fsync failed (the append that rolled, Compact, Ack,
	// DeleteSubscription, the store's Save, Prune or Remove) matches it
	// too, and the failure's cause (for example syscall.EIO), as does
	// every refusal after it: test for it with errors.Is, whichever call
	// failed first. What to do: check the disk, then restart the machine
	// or unmount and mount the file system again before reopening the
	// log (reopening it or restarting the process alone forgets the
	// failure but proves nothing: listings still come from the kernel's
	// cache). It is snapshot.ErrDirSyncFailed, whose documentation says
	// more.
	ErrDirSyncFailed = snapshot.ErrDirSyncFailed
)

type (
	// ConflictError reports an optimistic-concurrency conflict.
	ConflictError = event.ConflictError
	// CorruptError names the file and offset of damaged data.
	CorruptError = segment.CorruptError
)

var (
	// ErrClosed is returned by operations on a closed Log.
	ErrClosed = errors.New("evlog: log is closed")
	// ErrReadOnly is returned by writes to a Log opened with OpenReadOnly.
	ErrReadOnly = errors.New("evlog: log is open read-only")
	// ErrTimeBackwards: an appended event's explicit Time is earlier than
	// the log's last recorded time (recorded times never decrease in seq
	// order). Nothing was written.
	ErrTimeBackwards = errors.New("evlog: event time is earlier than the log's last recorded time")
	// ErrNotALog: the directory is not empty but holds no file of an evlog
	// log (no segment, snapshot or LOCK file), so it is someone else's:
	// Open refuses to create a log among other files, and read-only opens
	// refuse to call it an empty log. Use a new or empty directory.
	ErrNotALog = errors.New("evlog: not an evlog log")
	// ErrWriterFailed is matched by every append error after a write or
	// fsync failed: the writer stops for good (it never retries and
	// pretends). Close the Log and open it again; recovery re-reads what is
	// on disk. The outcome of the append that failed (and of any append
	// failing with it) is unknown: it may be present after reopening.
	// Retry with the same event IDs (see Log.Append, "Idempotency"): the
	// retry writes nothing if the append did reach the log.
	ErrWriterFailed = errors.New("evlog: the log writer failed; close and reopen the log")
)
