package evlog

import (
	"context"
	"fmt"

	"github.com/evlog/evlog/snapshot"
)

// Snapshots returns the log's snapshot store: snapshot files kept in the
// log directory beside the segments, configured by Options.Snapshot.
//
// Saving a snapshot first makes the log durable through the snapshot's
// seq, and the mark recording that durable (it fsyncs the active segment
// when anything was written to it since its last fsync: under SyncNever
// and SyncInterval the events, under SyncAlways the last group's mark),
// so a snapshot never outlives the events it folds, and a reader in
// another process serves them after a power loss. Under SyncAlways, when
// that mark cannot be written for lack of space (see SyncAlways), Save
// fails with an error matching syscall.ENOSPC and saves nothing. On a log
// opened with OpenReadOnly the store
// is read-only (Save and Prune fail with ErrReadOnly): a read-only log
// never writes. Tools that write snapshots beside a read-only log use
// OpenSnapshotWriter.
//
// The store shares the log directory, and the log's memory of a failed
// directory fsync (see ErrDirSyncFailed): once any directory fsync of the
// directory failed in this process (the writer's, Compact's, a
// subscription's, or the store's own), Save refuses before writing
// anything (its directory fsync could not prove the snapshot durable),
// and so do Prune and Remove (through snapshot.Options.DirSyncFailed),
// with an error matching ErrDirSyncFailed and the failure's cause.
//
// replay.MakePlan and friends take the store and the Log as their
// Snapshots and Source.
func (l *Log) Snapshots() (*snapshot.Store, error) {
	l.snapOnce.Do(func() {
		o := l.opts.Snapshot
		o.Logger = l.logger
		if l.readOnly {
			o.BeforeSave = func(context.Context, uint64) error { return ErrReadOnly }
		} else {
			o.BeforeSave = l.syncThrough
			o.DirSyncFailed = l.dirSyncFailure // dirsync.go
		}
		o.Anchor = l.anchorAt
		l.snaps, l.snapErr = snapshot.Open(l.fs, o)
		// Only the writer (the holder of the log's lock) cleans up
		// leftover temporaries: a SnapshotWriter never removes a file it
		// did not create.
		if l.snapErr == nil && !l.readOnly {
			if err := l.snaps.CleanTemps(); err != nil {
				l.logger.Warn("evlog: removing leftover snapshot temporaries", "err", err)
			}
		}
	})
	return l.snaps, l.snapErr
}

// anchorAt returns snapshot.AnchorOf the event at seq as recorded (an
// event expired by retention included), or 0 when the log does not hold
// all of it (beyond the end, or a placeholder Compact left of a gone
// event): the store's Options.Anchor, so that every snapshot records
// which event it was folded up to and replay can tell it from another
// event at the same seq (a log whose tail was replaced).
func (l *Log) anchorAt(ctx context.Context, seq uint64) (uint64, error) {
	_, a, _, err := l.AnchorEvent(ctx, seq)
	return a, err
}

// syncThrough makes the log durable through seq, and the mark recording
// that durable, before a snapshot at seq is saved (the writer's
// BeforeSave). Under SyncAlways the visible events are durable already,
// but the mark after the last group is not (a mark becomes durable only
// with the next fsync), and a reader in another process serves only what
// a durable mark records (docs/FORMAT.md, "Recovery", rule 9): after a
// power loss right after the Save it would serve the log up to the
// mark before, and take the snapshot for one beyond the end of the log.
// So unless such a reader already serves seq after a power loss
// (servedAfterPowerLoss), it has the writer make that mark durable
// (syncMarkedThrough): at most one fsync per Save, none when the fsync of
// a group appended meanwhile, or queued with the Save, makes the mark
// durable, and one for all the Saves and Acks queued together.
// Subscription.Ack follows the same rule.
func (l *Log) syncThrough(ctx context.Context, seq uint64) error {
	if err := l.dirSyncFailure(); err != nil { // dirsync.go
		return fmt.Errorf("evlog: nothing was saved: %w", err)
	}
	if last := l.LastSeq(); seq > last {
		return fmt.Errorf("evlog: a snapshot at seq %d is beyond the end of the log (%d)", seq, last)
	}
	if l.servedAfterPowerLoss(seq) {
		return nil
	}
	return l.syncMarkedThrough(ctx, seq)
}

// servedAfterPowerLoss reports whether a reader in another process
// serves every event up to seq, also after a power loss: under
// SyncAlways once a fsynced mark records them durable (markSynced: the
// next group's fsync, a Sync or a roll made the mark durable); under the
// other modes, whose readers serve every committed batch, once they are
// durable (DurableSeq).
func (l *Log) servedAfterPowerLoss(seq uint64) bool {
	if l.opts.Sync == SyncAlways {
		return l.markSynced.Load() >= seq
	}
	return l.DurableSeq() >= seq
}
