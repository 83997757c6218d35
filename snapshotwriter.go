package evlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/snapshot"
)

// SnapshotWriter is a read-only log with a snapshot store that may write:
// the entry point for tools that save or prune snapshots beside a log
// another process may be writing (evlogctl snapshot and snapshots
// --prune), without taking the log's lock.
//
// The contract:
//   - Log is a log opened as OpenReadOnly opens it: it never modifies,
//     creates or removes a file, and its own Snapshots store is read-only.
//   - Snapshots is the only thing that writes. It creates snapshot files
//     atomically and removes them (Prune); it never touches a segment,
//     the LOCK file, or a temporary it did not create (cleaning up
//     leftover temporaries is the writer's job, on Open).
//   - Before a Save, the segments holding the snapshot's events that may
//     not be durable yet (those still being written, and the newest
//     sealed one, whose seal may not have been fsynced) are fsynced, so
//     a snapshot never outlives the events it folds even beside a writer
//     that syncs lazily; a snapshot beyond the events Log serves fails
//     (Refresh first to see newer ones).
//
// Close closes both. A SnapshotWriter is safe for concurrent use.
type SnapshotWriter struct {
	log     *Log
	fs      vfs.FS // the directory without the read-only guard: the store and segment fsyncs only
	store   *snapshot.Store
	closeFS func() error // nil: the FS is not ours to close
	closed  sync.Once
	err     error // Close's
}

// OpenSnapshotWriter opens the log in dir for reading, as OpenReadOnly
// does, with a snapshot store that may write (see SnapshotWriter).
// Options.Snapshot configures the store; Options.Perm is the mode of the
// snapshot files it creates.
func OpenSnapshotWriter(dir string, opts Options) (*SnapshotWriter, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		return nil, fmt.Errorf("evlog: opening %s: %w", dir, err)
	}
	fsys.SetFilePerm(o.Perm)
	w, err := openSnapshotWriter(fsys, o)
	if err != nil {
		if errors.Is(err, ErrNotALog) {
			err = fmt.Errorf("evlog: opening %s: %w", dir, err)
		}
		return nil, errors.Join(err, fsys.Close())
	}
	w.log.dir, w.closeFS = dir, fsys.Close
	return w, nil
}

// openSnapshotWriter is OpenSnapshotWriter on fsys with options resolved.
func openSnapshotWriter(fsys vfs.FS, o Options) (*SnapshotWriter, error) {
	l, err := openResolved(vfs.ReadOnly(fsys), o, true)
	if err != nil {
		return nil, err
	}
	w := &SnapshotWriter{log: l, fs: fsys}
	so := o.Snapshot
	so.Logger = l.logger
	so.BeforeSave = w.syncThrough
	so.Anchor = l.anchorAt
	if w.store, err = snapshot.Open(fsys, so); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return w, nil
}

// Log returns the read-only log the snapshots are taken of (a Source for
// replay). Closing it is Close's job.
func (w *SnapshotWriter) Log() *Log { return w.log }

// Snapshots returns the store that may write (see SnapshotWriter).
func (w *SnapshotWriter) Snapshots() *snapshot.Store { return w.store }

// Close closes the log and the directory handle. It is idempotent.
func (w *SnapshotWriter) Close() error {
	w.closed.Do(func() {
		w.err = w.log.Close()
		if w.closeFS != nil {
			w.err = errors.Join(w.err, w.closeFS())
		}
	})
	return w.err
}

// syncThrough is the store's BeforeSave: it fsyncs, through the writable
// handle, every segment holding events up to seq that may not be durable
// yet — what a reader beside another process's writer can do to make sure
// the events a snapshot folds are durable. Those are the unsealed ones and
// the newest sealed one: a writer writes a seal before fsyncing it (and
// may have been killed in between), so a segment reading as sealed may
// still hold events in the page cache only (under SyncNever or
// SyncInterval). Older sealed segments were fsynced before anything went
// into the segment after them. A segment gone from the directory since
// Log's view was taken was made durable before it went.
func (w *SnapshotWriter) syncThrough(_ context.Context, seq uint64) error {
	v, pub, err := w.log.acquire()
	if err != nil {
		return err
	}
	defer v.unref()
	if seq > pub.seq {
		return fmt.Errorf("evlog: a snapshot at seq %d is beyond the end of the log (%d)", seq, pub.seq)
	}
	newestSealed := -1
	for i, s := range v.segs {
		if s.Sealed {
			newestSealed = i
		}
	}
	for i, s := range v.segs {
		if (s.Sealed && i != newestSealed) || s.FirstSeq() > seq {
			continue
		}
		err := syncNamed(w.fs.Open, s.Name)
		if errors.Is(err, fs.ErrNotExist) {
			// Gone since Log's view was taken: sealed (fsynced), then
			// compacted away (its replacement durable first) or
			// removed by retention; or an empty newest segment.
			continue
		}
		if err != nil {
			return fmt.Errorf("evlog: syncing %s before a snapshot: %w", s.Name, err)
		}
	}
	return nil
}
