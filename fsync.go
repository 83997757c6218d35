package evlog

// Durability: fsyncing the active segment and recording each fsync on
// disk with a mark frame.

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

type fsyncError struct{ err error }

func (e *fsyncError) Error() string { return "fsync: " + e.err.Error() }

func (e *fsyncError) Unwrap() error { return e.err }

func (w *writer) isFsyncErr(err error) bool {
	_, ok := errors.AsType[*fsyncError](err)
	return ok
}

// syncFile fsyncs the active segment and records the latency.
func (w *writer) syncFile() error {
	t0 := time.Now()
	err := w.f.Sync()
	w.l.stats.fsync(time.Since(t0))
	if err != nil {
		return &fsyncError{err}
	}
	w.markSyncedThrough(w.markSeq) // the marks written before are durable now
	return nil
}

// markSyncedThrough records that a reader in another process serves every
// event up to seq, also after a power loss (Log.markSynced; see
// servedAfterPowerLoss). It never moves markSynced back. Only the holder
// of writer.busy (and Open, before the writer starts) calls it.
func (w *writer) markSyncedThrough(seq uint64) {
	if seq > w.l.markSynced.Load() {
		w.l.markSynced.Store(seq)
	}
}

// syncOpenMark completes Open's recovery of the active segment under
// SyncAlways (openActive: recovery fsynced the segment, then wrote the
// mark recording what it kept, unless the file already ended with one).
// Every mark on disk before that fsync is durable; the mark just written
// is not, and a reader in another process serves, after a power loss,
// only what a durable mark records. Rather than leave it to the first
// snapshot Save or Subscription.Ack (one fsync each, after every Open
// that found a tail no mark recorded), it fsyncs that mark here: then a
// reader serves the whole log after a power loss, and markSynced says so
// from the start. A mark skipped for lack of space leaves markSynced
// where it is: Save and Ack then write the mark first, or fail.
func (w *writer) syncOpenMark() error {
	if w.opts.Sync != SyncAlways {
		return nil // markSynced is read under SyncAlways only
	}
	if w.end > w.durable {
		if err := w.syncFile(); err != nil {
			return fmt.Errorf("evlog: recovery: syncing the mark of %s: %w", w.name, err)
		}
		w.durable = w.end
	}
	if !w.unmarked() {
		w.markSyncedThrough(w.lastSeq)
	}
	return nil
}

// fsync makes the committed frames durable (Sync, interval, Close) and
// records it with a mark.
func (w *writer) fsync() {
	if !w.syncMarked() {
		return
	}
	if err := w.maybeCheckpoint(false); err != nil {
		w.fail(err)
	}
}

// syncMarked is fsync without the checkpoint that may follow: it fsyncs
// the active segment, publishes the durable end and writes the mark
// recording it. It reports whether both succeeded; the writer failed if
// not.
func (w *writer) syncMarked() bool {
	if err := w.syncFile(); err != nil {
		w.fail(err)
		return false
	}
	w.durable = w.end
	w.dirtySince = time.Time{}
	w.l.mu.Lock()
	w.l.setDurableLocked(w.lastSeq)
	w.l.mu.Unlock()
	if err := w.mark(); err != nil {
		w.fail(err)
		return false
	}
	return true
}

// mark appends a mark frame recording on disk that the active segment was
// fsynced up to w.end; it is called right after each fsync and does
// nothing when no frame was written since the last mark (or the segment
// is of format version 1, which has no marks). The mark is not fsynced
// here: the next fsync (the next group under SyncAlways, the next Sync or
// interval tick, a roll, Close) makes it durable. A write that fails for
// lack of space with nothing left behind only skips the mark (the data is
// durable; the next mark records it); any other failure is returned and
// is fatal.
func (w *writer) mark() error {
	at, marked, err := w.writeMark()
	if marked {
		w.l.mu.Lock()
		w.markedLocked(at)
		w.l.mu.Unlock()
	}
	return err
}

// writeMark is mark's write: it appends the mark frame (marked: one was
// written, recording the segment durable up to at) and leaves recording
// it in the index to the caller, under l.mu (markedLocked), so that flush
// publishes a group and its mark at once, after the mark is on disk.
func (w *writer) writeMark() (at int64, marked bool, _ error) {
	if w.header.Version < 2 || w.end <= w.markEnd || w.durable != w.end {
		return 0, false, nil
	}
	at = w.end
	strict := w.opts.Sync == SyncAlways
	w.markBuf = segment.AppendMarkFrame(w.markBuf[:0], w.header, at, strict)
	n, err := w.f.Write(w.markBuf)
	if err != nil {
		var undoErr error
		if n > 0 {
			undoErr = w.f.Truncate(at)
		}
		if undoErr == nil {
			_, undoErr = w.f.Seek(at, io.SeekStart)
		}
		if undoErr == nil && errors.Is(err, syscall.ENOSPC) {
			if !w.markSkipped {
				// Once per shortage: the writer retries (markRetry).
				w.markSkipped = true
				w.l.logger.Warn("evlog: no space left to record an fsync in a mark frame; the data is durable, but readers in other processes do not serve it until a mark records it: free space, the writer retries", "file", w.name, "err", err)
			}
			return 0, false, nil
		}
		return 0, false, errors.Join(fmt.Errorf("writing a mark to %s: %w", w.name, err), undoErr)
	}
	w.end += int64(n)
	w.markEnd = w.end
	w.markSeq = w.lastSeq
	w.markSkipped = false
	return at, true, nil
}

// The delays of the idle writer's retries of a mark skipped for lack of
// space (markRetry): the first retry comes markRetryMin after the skip,
// each later one after twice the delay before, up to markRetryMax. A
// retry is one write of a mark frame (segment.MarkFrameSize bytes, no
// fsync), so the first ones are frequent: a reader in another process
// serves the group within tens of milliseconds of space coming back
// (the usual case: a transient shortage, a file removed). The cap bounds
// what a disk that stays full costs, one failed write and no log line a
// second, and how late such a reader serves the group once space is
// back: at most markRetryMax.
const (
	markRetryMin = 10 * time.Millisecond
	markRetryMax = time.Second
)

// markRetry is the writer's timer for retrying, while it is idle, the
// mark a write that ran out of space skipped (writer.remark): without
// it, a log that goes idle right after the skip leaves readers in other
// processes without its last acknowledged groups until the next append,
// Sync or Close. It exists only while a mark is pending: run arms it
// (update) only while writer.unmarked holds — which is never under
// SyncInterval or SyncNever, so it never meets their ticker — and stops
// it once the mark is written or the writer fails or stops; no timer
// runs in the common case. Only run's goroutine uses it.
//
// The marked Syncs waiting for a mark (deferMarked: a snapshot Save, a
// Subscription.Ack) are no concern of it: finishDeferred completes them
// all at the end of the batch they came in, failing them (matching
// syscall.ENOSPC) when the mark is still unwritten, so none is left
// waiting when a timed retry writes it; their callers retry.
type markRetry struct {
	t     *time.Timer
	c     <-chan time.Time // t.C while armed; nil otherwise
	delay time.Duration    // the delay of the next arming (0: markRetryMin)
}

// update arms the timer when a mark is pending and it is not armed, and
// stops it, resetting the backoff, when none is.
func (r *markRetry) update(pending bool) {
	switch {
	case !pending:
		r.stop()
		r.delay = 0
	case r.c == nil:
		if r.delay == 0 {
			r.delay = markRetryMin
		}
		if r.t == nil {
			r.t = time.NewTimer(r.delay)
		} else {
			r.t.Reset(r.delay)
		}
		r.c = r.t.C
	}
}

// fired records that the armed timer fired (its value received from c):
// the next arming waits twice as long, up to markRetryMax.
func (r *markRetry) fired() {
	r.c = nil
	r.delay = min(2*r.delay, markRetryMax)
}

// stop stops the timer, if armed.
func (r *markRetry) stop() {
	if r.c != nil {
		r.t.Stop()
		r.c = nil
	}
}

// deferMarked takes a marked Sync that needs durable only the marks
// recording the events up to r.through (a snapshot Save or
// Subscription.Ack: Log.syncMarkedThrough). Those marks were written
// before the Sync was queued, so any fsync of the active segment from now
// on makes them durable (syncFile: markSynced), and so does a roll's
// seal. r is done at once when an fsync since it was queued (the group
// the writer was busy with) already did; else it waits for the end of
// the writer's batch of requests (finishDeferred), whose group's fsync,
// if the batch holds appends, does it: an Ack or Save beside appends
// costs no fsync of its own, and those of one batch share one.
func (w *writer) deferMarked(r *request) {
	if w.failed != nil {
		r.finish(w.failed)
		return
	}
	if w.l.servedAfterPowerLoss(r.through) {
		r.finish(nil)
		return
	}
	w.deferred = append(w.deferred, r)
}

// finishDeferred completes the Syncs deferMarked deferred, once the
// batch's group is flushed: those its fsync did not serve are served as
// a Sync with marked is (take), by one fsync for them all.
func (w *writer) finishDeferred() {
	if len(w.deferred) == 0 {
		return
	}
	need := false
	for _, r := range w.deferred {
		need = need || !w.l.servedAfterPowerLoss(r.through)
	}
	if need {
		w.remark()
		if w.failed == nil && w.end > w.durable {
			w.fsync()
		}
	}
	for _, r := range w.deferred {
		err := w.failed
		if err == nil && !w.l.servedAfterPowerLoss(r.through) && w.unmarked() {
			err = w.unmarkedErr("free space and retry")
		}
		r.finish(err)
	}
	clear(w.deferred)
	w.deferred = w.deferred[:0]
}

// unmarkedErr is the error of a call that needs the active segment's
// last group recorded by a mark (a marked Sync: snapshot Save and
// Subscription.Ack; Close) when, under SyncAlways, that mark still cannot
// be written for lack of space (unmarked); next says what to do. It
// matches syscall.ENOSPC, not ErrWriterFailed: the group is durable and
// the writer goes on.
func (w *writer) unmarkedErr(next string) error {
	return fmt.Errorf("evlog: no space left to record in a mark of %s that its last group is durable; a reader in another process does not serve that group until a mark does: %s: %w", w.name, next, syscall.ENOSPC)
}

// markedLocked records in the active index and the published end the mark
// writeMark wrote (l.mu held).
func (w *writer) markedLocked(at int64) {
	w.idx.End, w.idx.Durable = w.end, at
	w.idx.Marked, w.idx.Strict = true, w.opts.Sync == SyncAlways
	w.l.setEndLocked(w.end)
}

// syncNamed fsyncs file name through a handle of its own, opened by open
// (fsys.Open, or fsys.OpenReadWrite where a read-only handle cannot be
// fsynced, as on Windows, and the caller may write).
func syncNamed(open func(string) (vfs.File, error), name string) error {
	f, err := open(name)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncUnprovenSeal fsyncs the newest sealed segment recovery found when no
// event was committed after it. A roll puts events into the next segment
// only once the seal's fsync has returned, so only then is the seal proven
// durable: a writer killed between writing a seal and fsyncing it (under
// SyncNever or SyncInterval) leaves the sealed segment's events, and the
// seal, in the page cache only, while the log about to be opened reports
// them durable (DurableSeq, and so Sync, snapshots and subscription
// positions, build on them). An empty newest segment after a sealed one
// is that state, or a clean stop right after a roll: one fsync of a file
// that is then already clean.
func syncUnprovenSeal(fsys vfs.FS, rec *recovered) error {
	n := len(rec.segs)
	if rec.active != nil {
		if rec.active.Count > 0 {
			return nil
		}
		n--
	}
	if n == 0 || !rec.segs[n-1].Sealed {
		return nil
	}
	name := rec.segs[n-1].Name
	if err := syncNamed(fsys.OpenReadWrite, name); err != nil {
		return fmt.Errorf("evlog: recovery: syncing %s, sealed just before the writer stopped: %w", name, err)
	}
	return nil
}
