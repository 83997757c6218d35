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
// is read-only, unless Options.AllowSnapshotWrites is set: then it creates
// and removes snapshot files (atomically; never segments), fsyncing the
// newest segment before a save, which is safe beside a running writer.
//
// replay.MakePlan and friends take the store and the Log as their
// Snapshots and Source.
func (l *Log) Snapshots() (*snapshot.Store, error) {
	l.snapOnce.Do(func() {
		o := l.opts.Snapshot
		o.Logger = l.logger
		fsys := l.fs
		switch {
		case !l.readOnly:
			o.BeforeSave = l.syncThrough
		case l.opts.AllowSnapshotWrites && l.rawFS != nil:
			fsys = l.rawFS
			o.BeforeSave = l.syncNewestSegment
		default:
			o.BeforeSave = func(context.Context, uint64) error { return ErrReadOnly }
		}
		l.snaps, l.snapErr = snapshot.Open(fsys, o)
		// Only the writer (the holder of the log's lock) cleans up
		// leftover temporaries; a read-only log, even one allowed to
		// write snapshots, never removes a file it did not create.
		if l.snapErr == nil && !l.readOnly {
			if err := l.snaps.CleanTemps(); err != nil {
				l.logger.Warn("evlog: removing leftover snapshot temporaries", "err", err)
			}
		}
	})
	return l.snaps, l.snapErr
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

// syncNewestSegment fsyncs the newest segment through a read-only handle:
// what a reader beside another process's writer can do to make sure the
// events a snapshot folds are durable.
func (l *Log) syncNewestSegment(ctx context.Context, seq uint64) error {
	v, pub, err := l.acquire()
	if err != nil {
		return err
	}
	defer v.unref()
	if seq > pub.seq {
		return fmt.Errorf("evlog: a snapshot at seq %d is beyond the end of the log (%d)", seq, pub.seq)
	}
	for _, s := range v.segs {
		if s.Sealed || s.FirstSeq() > seq {
			continue
		}
		f, err := l.rawFS.Open(s.Name)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("evlog: syncing %s before a snapshot: %w", s.Name, err)
		}
	}
	return nil
}
