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
// seq (it fsyncs under SyncNever and SyncInterval), so a snapshot never
// outlives the events it folds. On a log opened with OpenReadOnly the store
// is read-only (Save and Prune fail with ErrReadOnly): a read-only log
// never writes. Tools that write snapshots beside a read-only log use
// OpenSnapshotWriter.
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

// syncThrough makes the log durable through seq (the writer's BeforeSave).
func (l *Log) syncThrough(ctx context.Context, seq uint64) error {
	if last := l.LastSeq(); seq > last {
		return fmt.Errorf("evlog: a snapshot at seq %d is beyond the end of the log (%d)", seq, last)
	}
	if l.opts.Sync == SyncAlways {
		return nil // visible events are durable already
	}
	return l.Sync(ctx)
}
