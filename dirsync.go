package evlog

// One directory, one fate: a failed directory fsync of the log directory,
// by anyone in this process, stops everything that relies on a later one.

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/evlog/evlog/internal/vfs"
)

// dirSyncFS is a writer's log directory (Log.fs): the FS it opened,
// remembering the first directory fsync that failed. The segments,
// checkpoints, subscription files and snapshots share the directory, and
// everything that writes in it (the writer's rolls and checkpoints,
// Compact, subscriptions, the snapshot store of Log.Snapshots) fsyncs it
// through this one FS.
//
// Why: a directory fsync that failed may have lost the directory changes
// pending at the time (on Linux the kernel may mark them clean after the
// writeback error, "fsyncgate"), whoever made them: a segment a roll just
// created, a compaction's output, a snapshot or subscription file renamed
// into place. A later directory fsync then succeeds without writing them,
// while listings, served from the kernel's cache, still show them. So
// once one failed, no later directory fsync of this directory proves
// anything durable, and SyncDir says so: every later call fails, with
// the error failure returns (matching ErrDirSyncFailed and the first
// failure's cause), after calling the underlying SyncDir (it may still
// write the changes made since). The first failure itself fails with an
// error matching ErrDirSyncFailed and the underlying FS's error, so the
// call during which it happened (a roll, a checkpoint, Compact,
// Subscription.Ack, DeleteSubscription, a snapshot Save, Prune or Remove)
// matches the sentinel as every refusal after it does.
//
// SyncDir calls are serialised, the failure recorded before the failing
// call returns: a SyncDir that returns nil ran entirely before any
// failure or after one recorded, so a nil from it does prove durable the
// entries made before it started (the writer relies on that for a new
// segment; see writer.checkDirSync).
//
// The record lives as long as the Log: reopening the log forgets it. It
// is not shared with other processes (a SnapshotWriter, evlogctl), whose
// snapshot stores keep their own (snapshot.ErrDirSyncFailed). A read-only
// Log has none: it never fsyncs the directory.
type dirSyncFS struct {
	vfs.FS
	log    *slog.Logger
	mu     sync.Mutex // serialises SyncDir
	failed atomic.Pointer[error]
}

func newDirSyncFS(fsys vfs.FS, log *slog.Logger) *dirSyncFS {
	return &dirSyncFS{FS: fsys, log: log}
}

// UnwrapFS returns the FS d wraps (vfs.Link and vfs.Shared look through
// it to the operating-system directory).
func (d *dirSyncFS) UnwrapFS() vfs.FS { return d.FS }

// SyncDir implements vfs.FS; see dirSyncFS.
func (d *dirSyncFS) SyncDir() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.FS.SyncDir()
	if d.failed.Load() != nil {
		return d.failure()
	}
	if err != nil {
		d.failed.Store(&err)
		d.log.Error("evlog: a directory fsync of the log directory failed; the writer stops, and Compact, Subscription.Ack and the snapshot store's Save, Prune and Remove refuse until the log is reopened (check the disk, then restart the machine or remount the file system before reopening it)", "err", err)
		return fmt.Errorf("evlog: fsync of the log directory failed (%w): %w; the file system may have lost the directory changes made before it for good, so the writer stops and Compact, Subscription.Ack, DeleteSubscription and the snapshot store's Save, Prune and Remove refuse: check the disk, then restart the machine or unmount and mount the file system again before reopening the log",
			ErrDirSyncFailed, err)
	}
	return nil
}

// failure returns nil until a directory fsync through d failed, then an
// error matching ErrDirSyncFailed and the failure's cause that says what
// to do. Safe from any goroutine.
func (d *dirSyncFS) failure() error {
	p := d.failed.Load()
	if p == nil {
		return nil
	}
	return fmt.Errorf("evlog: a directory fsync of the log directory failed earlier in this process (%w), so the file system may have lost directory changes made before it for good (a new segment, a compaction's output, a snapshot or subscription file) and no later fsync proves them durable (%w); check the disk (the kernel log, free space, the device's health), then restart the machine or unmount and mount the file system again before reopening the log: reopening it, or restarting the process, alone proves nothing, as listings still come from the kernel's cache",
		*p, ErrDirSyncFailed)
}

// dirSyncFailure returns the failure of l's directory fsyncs (see
// dirSyncFS.failure); nil for a read-only log, which never fsyncs the
// directory.
func (l *Log) dirSyncFailure() error {
	if l.dirSync == nil {
		return nil
	}
	return l.dirSync.failure()
}

// checkDirSync fails the writer once a directory fsync of the log
// directory failed (dirSyncFS), whoever made it. The writer calls it when
// it takes a request (an append, Sync, the marked Sync of a snapshot Save
// or Subscription.Ack), before a roll, and at Close: so no request taken
// after the failure was recorded is acknowledged, and no segment is
// created on the word of a directory fsync.
//
// Why there: a group is durable once its own file fsync returned and its
// segment's directory entry is durable. That entry was made durable by
// the directory fsync of segment.Create, which returned nil before the
// writer wrote into the segment; with dirSyncFS, a nil proves it (no
// failure was recorded before it, and calls are serialised), and a later
// failure cannot undo it. So a group fsynced before the failure was
// recorded is acknowledged truthfully, and one in flight when it is may
// be too; the next request is refused. A roll would rely on a directory
// fsync after the failure, which proves nothing (segment.Create fails
// with dirSyncFS's error anyway): it is refused, and the writer stops.
// The engine's rule, fsync errors stop the writer, is kept for the
// directory as for the segment.
//
// Before it stops, the writer fsyncs (and marks) the frames written but
// not yet fsynced (under SyncNever and SyncInterval, acknowledged
// appends; under SyncAlways, the last mark): they are in the active
// segment, whose entry was durable before the failure (above), so that
// fsync does make them durable. Without it they were left to the page
// cache: the writer stopped, neither the interval's fsync nor Close's
// ran, and a power loss lost acknowledged appends.
func (w *writer) checkDirSync() {
	if w.failed != nil {
		return
	}
	if err := w.l.dirSyncFailure(); err != nil {
		if w.end > w.durable {
			w.fsync() // fails the writer on an error of its own
		}
		if w.failed == nil {
			w.fail(err)
		}
	}
}
