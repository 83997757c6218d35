package evlog

// Failure: undoing a group that did not fit, and the fail-stop state
// every later request sees.

import (
	"errors"
	"fmt"
	"io"
	"syscall"
)

// abortGroup handles a failed write or fsync of the staged group. A write
// that failed for lack of space is undone (the partial bytes truncated) and
// fails only this group; anything else, and any fsync failure, is fatal.
func (w *writer) abortGroup(written int, err error) {
	if errors.Is(err, syscall.ENOSPC) && !w.isFsyncErr(err) {
		undoErr := error(nil)
		if written > 0 {
			undoErr = w.f.Truncate(w.end)
		}
		if undoErr == nil {
			_, undoErr = w.f.Seek(w.end, io.SeekStart)
		}
		if undoErr == nil {
			err = fmt.Errorf("evlog: no space left on the device; nothing of this batch was written (free space and retry): %w", err)
			w.l.logger.Warn("evlog: append failed for lack of space", "err", err)
			// The bytes removed may leave room for a mark that an
			// earlier lack of space skipped (fsync.go): write it before
			// the appenders hear of this failure, so that then a reader
			// in another process serves every group acknowledged before.
			if w.remark(); w.failed != nil {
				return // fail finished the group's requests
			}
			w.tombs.unstage() // deletion_writer.go
			for _, r := range w.group {
				r.finish(err)
			}
			w.resetGroup()
			return
		}
		err = errors.Join(err, undoErr)
	}
	w.fail(err)
}

// fail puts the writer in its failed state: every staged and future
// request gets the error. Nothing retries: after an fsync error the page
// cache cannot be trusted, and only reopening (recovery) can say what is
// on disk.
func (w *writer) fail(err error) {
	w.failed = fmt.Errorf("%w: %w", ErrWriterFailed, err)
	w.failedAt.Store(&w.failed)
	w.l.mu.Lock()
	w.l.wakeDurableLocked() // WaitDurable will see the failure
	w.l.mu.Unlock()
	w.l.logger.Error("evlog: writer failed; appends are refused until the log is reopened", "err", err)
	for _, r := range w.group {
		r.finish(w.failed)
	}
	w.resetGroup()
}

// failure returns the writer's failure, if any; safe from any goroutine.
func (w *writer) failure() error {
	if p := w.failedAt.Load(); p != nil {
		return *p
	}
	return nil
}
