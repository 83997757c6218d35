package evlog

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// request is one Append/AppendBatch (or Sync) call waiting for the writer.
type request struct {
	batch  []AppendRequest
	src    batchSource // a typed batch, encoded by the writer (batch is nil)
	size   int         // upper bound of the encoded size (typed: once staged)
	events int
	sync   bool // a Sync call: no events
	// marked, with sync: the call needs the last group's mark on disk
	// too (syncThrough, Subscription.Ack), and fails if it cannot be
	// written (see writer.remark).
	marked bool
	// through, with marked: only the marks recording the events up to
	// it must be durable (Log.syncMarkedThrough); 0: every event.
	through uint64
	// noIDs: no event carries an ID (the appender checked), so the
	// writer's ID check (dedupe.go) skips the request. The zero value
	// has the writer look.
	noIDs bool
	now   int64 // the clock's reading for the batch, once read
	// part0 is the index in writer.partLast of its first part, once
	// staged (the writer's).
	part0 int
	// nameLen is the length of its longest stream name, once the writer
	// needed it (0: not yet; see longestStream).
	nameLen int

	state atomic.Int32 // reqPending → reqTaken (writer) or reqCanceled (caller)
	done  chan struct{}
	pos   []Position
	err   error
}

const (
	reqPending int32 = iota
	reqTaken
	reqCanceled
)

func (r *request) finish(err error) {
	r.err = err
	close(r.done)
}

// writer sequences, encodes, writes and fsyncs appends, one round of
// requests at a time, on run's goroutine or, when the log is idle, on the
// appender's own (submit, direct). Everything below the queue fields is
// owned by whoever holds busy.
type writer struct {
	l    *Log
	opts Options

	tombs tombstones // deletion_writer.go

	// busy, a lock (a channel of capacity 1, full when held), is held by
	// whoever does the writer's work, run's goroutine or an appender
	// doing it itself (submit): everything below the queue fields is owned
	// by its holder. A channel, not a sync.Mutex: a goroutine waiting for
	// it is durably blocked in a testing/synctest bubble.
	busy chan struct{}
	// exited: shutdown ran (under busy); nothing may touch the files.
	exited bool

	qmu     sync.Mutex
	queue   []*request
	stopped bool
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}

	f       vfs.File // the active segment, positioned at end
	name    string
	hdr     [segment.HeaderSize]byte
	header  segment.Header // hdr decoded (its mark key signs the marks)
	idx     *segment.Index // the active index, shared with readers (mutated under l.mu)
	end     int64          // end of the committed frames
	durable int64          // end of the fsynced frames
	markEnd int64          // end of the data recorded as durable, including the last mark frame
	markSeq uint64         // the last seq a mark written to the active segment records durable (0: none yet)
	ckptEnd int64          // prefix end of the active segment's newest checkpoint (0: none)
	// ckptBackground: the interval's checkpoints are written in the
	// background (on an operating-system directory; see maybeCheckpoint).
	ckptBackground bool
	ckptJob        *checkpointJob // the checkpoint being written in the background (nil: none)
	ckptBuf        []byte         // the background checkpoints' encoding storage, between two
	markBuf        []byte
	// markSkipped: a mark write ran out of space since the last mark
	// written (writeMark warns once per shortage, not at every retry).
	markSkipped bool
	// dirtySince is when the first frames not yet fsynced were written
	// (zero when everything written is durable, marks aside): SyncInterval
	// fsyncs once it is d old, between groups as well as at its ticks.
	dirtySince time.Time
	lastSeq    uint64 // last committed seq
	lastTime   int64  // its recorded time
	streams    uint64
	failed     error
	failedAt   atomic.Pointer[error] // failed, for other goroutines
	closeErr   error

	// versions caches streams' current versions (0: no stream). Streams of
	// the active segment are also found in idx, older ones in the sealed
	// segments' indexes, so the cache can be dropped at any time.
	versions map[string]*streamVersion // including the staged requests' (see undo)

	// The group being staged.
	buf      []byte
	infos    []segment.EventInfo
	infoSV   []*streamVersion // the version cache entry of each of infos
	partLast []int32          // per staged part, the index in infos of its last event
	// stagedName bounds the length of the staged events' stream names
	// (set while staging, not undone by a rollback, reset with the
	// group; see needRollAt).
	stagedName int
	group      []*request
	undo       []undoEntry
	nextSeq    uint64 // seq the next staged event gets
	nextTime   int64  // recorded time of the last staged event
	newStrs    uint64 // streams begun by the staged events
	spare      []*request
	calls      int            // append calls in the group
	penc       payloadEncoder // encodes typed payloads into buf

	ids *idIndex // event IDs (dedupe.go); nil until an append carries one

	// footerBuf is the storage of the last checkpoint file or seal footer
	// the writer encoded, reused by the next one (its bytes are dead once
	// written: vfs files copy what they are given). Only the holder of
	// busy touches it; a segment's footers then cost one allocation
	// of their size, not one (zeroed) per checkpoint and seal.
	footerBuf []byte

	// deferred holds the marked Syncs with a through taken from the
	// queue, until the group staged with them is flushed (fsync.go).
	deferred []*request

	// Adaptive group commit (see gather).
	lastCalls   int           // append calls in the last group written
	lastFsync   time.Duration // duration of its fsync
	gatherTimer *time.Timer
}

// flushThreshold makes the writer write out a group once its buffer holds
// this much, so a burst of appends never needs an unbounded buffer.
const flushThreshold = 8 << 20

func startWriter(l *Log, rec *recovered) (*writer, error) {
	w := &writer{
		l: l, opts: l.opts,
		wake: make(chan struct{}, 1), busy: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		versions: make(map[string]*streamVersion),
	}
	w.penc.reset()
	w.ckptBackground = vfs.IsOS(l.fs) || checkpointDeferred
	w.lastSeq, w.lastTime, w.streams = l.pub.seq, l.pub.time, l.pub.streams
	if err := syncUnprovenSeal(l.fs, rec); err != nil {
		return nil, err
	}
	if rec.active == nil {
		// An empty directory, or a sealed newest segment whose successor
		// never became durable: start a new active segment.
		if len(rec.segs) == 0 {
			id, err := newLogID()
			if err != nil {
				return nil, fmt.Errorf("evlog: generating a log ID: %w", err)
			}
			l.logID = id
		}
		if err := w.startSegment(false); err != nil {
			return nil, err
		}
	} else {
		if err := w.openActive(rec); err != nil {
			return nil, err
		}
		if err := w.upgradeActive(); err != nil {
			return nil, errors.Join(err, w.f.Close())
		}
	}
	w.nextSeq, w.nextTime = w.lastSeq+1, w.lastTime
	go w.run()
	return w, nil
}

// submit queues r and waits for its outcome (see Append for ctx).
func (w *writer) submit(ctx context.Context, r *request) error {
	w.qmu.Lock()
	if w.stopped {
		w.qmu.Unlock()
		return ErrClosed
	}
	w.queue = append(w.queue, r)
	alone := len(w.queue) == 1
	w.qmu.Unlock()
	if alone && ctx.Err() == nil && w.tryLock() {
		// The writer is idle and r is alone: do its work here, saving
		// two goroutine hand-offs (the wake-up of run's goroutine, and
		// of this one when r is done).
		w.runDirect()
	} else {
		w.signal()
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqPending, reqCanceled) {
			return ctx.Err()
		}
		<-r.done // sequenced: the outcome is decided, wait for it
		return r.err
	}
}

// lock takes w.busy, waiting for it.
func (w *writer) lock() { w.busy <- struct{}{} }

// tryLock takes w.busy if it is free.
func (w *writer) tryLock() bool {
	select {
	case w.busy <- struct{}{}:
		return true
	default:
		return false
	}
}

// unlock releases w.busy.
func (w *writer) unlock() { <-w.busy }

// signal wakes run's goroutine.
func (w *writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// direct does one round of the writer's work in an appender's goroutine
// (submit), with w.busy held: the requests queued now, as run's drain
// does, but one round only, so an appender never serves others for long.
// What it leaves to do (requests queued since, a mark to retry) it
// leaves to run's goroutine. It leaves everything to it when the last
// group was shared (gathers): a direct round never gathers, and the
// first appender back after a shared group would write alone, and the
// others after it, an fsync each.
func (w *writer) direct() {
	if w.exited {
		return
	}
	if w.gathers() {
		w.signal()
		return
	}
	q := w.takeQueue()
	if q == nil {
		return
	}
	w.round(q)
	w.qmu.Lock()
	more := len(w.queue) > 0
	w.qmu.Unlock()
	if more || w.failed == nil && w.unmarked() {
		w.signal()
	}
}

// runDirect runs direct with w.busy held and releases it. A panic out of
// the round (not an encoder's: stageTyped turns those into errors; a
// Clock's, a log handler's, a bug's) or a runtime.Goexit leaves the
// writer's state halfway through a round nothing can finish, with busy
// held: every later append and Close would hang. On run's goroutine such
// a panic ended the process; here the appender's caller might recover it
// (net/http recovers its handlers' panics). So it ends the process as it
// did, from a goroutine of its own, with the panic and its stack.
func (w *writer) runDirect() {
	finished := false
	defer func() {
		if finished {
			w.unlock()
			return
		}
		p := recover()
		stack := debug.Stack()
		go func() {
			panic(fmt.Sprintf("evlog: the writer's round panicked on the goroutine of an Append (the log cannot go on): %v\n\n%s", p, stack))
		}()
		select {} // the panic above ends the process
	}()
	w.direct()
	finished = true
}

// round takes q's requests and writes their group.
func (w *writer) round(q []*request) {
	for _, r := range q {
		w.take(r)
	}
	w.flush()
	w.finishDeferred()
	clear(q)
	w.spare = q
	// Under load the queue never empties and run's ticker is never
	// read: honour SyncInterval between groups too.
	if d := w.opts.Sync.interval(); d > 0 && w.failed == nil && !w.dirtySince.IsZero() && time.Since(w.dirtySince) >= d {
		w.fsync()
	}
}

func (w *writer) run() {
	defer close(w.done)
	var tick <-chan time.Time
	if d := w.opts.Sync.interval(); d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		tick = t.C
	}
	var retry markRetry // fsync.go: a mark skipped for lack of space
	defer retry.stop()
	for {
		w.lock()
		retry.update(w.failed == nil && w.unmarked())
		w.unlock()
		select {
		case <-w.wake:
			w.lock()
			w.drain()
			w.unlock()
		case <-tick:
			w.lock()
			if w.failed == nil && w.end > w.durable {
				w.fsync()
			}
			w.unlock()
		case <-retry.c:
			w.lock()
			retry.fired()
			w.remark()
			w.unlock()
		case <-w.quit:
			w.lock()
			w.drain()
			w.shutdown()
			w.exited = true
			w.unlock()
			return
		}
	}
}

// drain processes the queue until it is empty.
func (w *writer) drain() {
	for {
		w.gather()
		q := w.takeQueue()
		if q == nil {
			return
		}
		w.round(q)
	}
}

// takeQueue takes the queued requests, leaving the queue empty (nil when
// there were none). round recycles the slice (w.spare).
func (w *writer) takeQueue() []*request {
	w.qmu.Lock()
	q := w.queue
	w.queue = w.spare[:0]
	w.qmu.Unlock()
	if len(q) == 0 {
		w.spare = q
		return nil
	}
	return q
}

// maxGatherDelay bounds how long the writer waits for more appenders to
// share an fsync.
const maxGatherDelay = 250 * time.Microsecond

// gather implements adaptive group commit: when the last group was shared
// by several appenders (so others are likely just resubmitting after its
// fsync) and fewer are queued now, it waits a little — at most half the
// last fsync's duration, and at most maxGatherDelay — for the queue to
// reach the last group's size, so one fsync covers them all. A lone
// appender never waits.
func (w *writer) gather() {
	if !w.gathers() {
		return
	}
	queued := func() int {
		w.qmu.Lock()
		defer w.qmu.Unlock()
		return len(w.queue)
	}
	if n := queued(); n == 0 || n >= w.lastCalls {
		return
	}
	if w.gatherTimer == nil {
		w.gatherTimer = time.NewTimer(time.Hour)
	}
	w.gatherTimer.Reset(min(w.lastFsync/2, maxGatherDelay))
	defer w.gatherTimer.Stop()
	for {
		select {
		case <-w.wake:
			if queued() >= w.lastCalls {
				return
			}
		case <-w.gatherTimer.C:
			return
		case <-w.quit:
			return
		}
	}
}

// gathers reports whether the next group is one gather may wait for:
// under SyncAlways, after a group shared by several appenders whose fsync
// took measurable time.
func (w *writer) gathers() bool {
	return w.opts.Sync == SyncAlways && w.lastCalls >= 2 && w.lastFsync > 0
}

// take stages one request, flushing and rolling first when needed.
func (w *writer) take(r *request) {
	if !r.state.CompareAndSwap(reqPending, reqTaken) {
		return // canceled by its caller before it was sequenced
	}
	w.checkDirSync() // dirsync.go
	if w.failed != nil {
		r.finish(w.failed)
		return
	}
	if r.sync {
		if r.marked && r.through > 0 {
			w.deferMarked(r)
			return
		}
		w.flush()
		w.remark()
		if w.failed == nil && w.end > w.durable {
			w.fsync()
		}
		err := w.failed
		if err == nil && r.marked && w.unmarked() {
			err = w.unmarkedErr("free space and retry")
		}
		r.finish(err)
		return
	}
	if !noDedupe && !r.noIDs && w.dedupe(r) { // a retry, or a duplicate ID (dedupe.go)
		return
	}
	if r.src != nil && r.size == 0 {
		// A typed request's size is known once encoded: stage it, and
		// unstage it if it turns out not to fit after all.
		m := w.stageMark()
		if err := w.stageTyped(r); err != nil {
			r.finish(err)
			return
		}
		if !w.needRollAt(m, r) { // stage set r.size
			if len(w.buf) >= flushThreshold {
				w.flush()
			}
			return
		}
		w.rollback(m)
		w.group = w.group[:len(w.group)-1]
		w.calls--
	}
	if w.needRoll(r) {
		w.flush()
		if w.failed != nil {
			r.finish(w.failed)
			return
		}
		// The flush may have failed for lack of space, leaving the
		// segment (just started by a roll, perhaps) empty: roll only if
		// the request still does not fit.
		if w.needRoll(r) {
			if err := w.roll(); err != nil {
				r.finish(err)
				return
			}
		}
	}
	if err := w.stageTyped(r); err != nil {
		// A roll's append, refused: the mark goes in before the refusal
		// returns, so a process killed once it has returned leaves the
		// proof of the seal on disk.
		w.markEmpty()
		r.finish(err)
		return
	}
	if len(w.buf) >= flushThreshold {
		w.flush()
	}
}

// unmarked reports whether, under SyncAlways, frames of the active segment
// are durable but recorded so by no mark: a mark write that ran out of
// space was skipped (writeMark), and a reader in another process does not
// serve the group until a mark records it.
func (w *writer) unmarked() bool {
	return w.opts.Sync == SyncAlways && w.header.Version >= 2 && w.markEnd < w.end && w.durable == w.end
}

// remark writes the mark a write that ran out of space skipped (the
// frames are durable; see writeMark), at the writer's next opportunity
// that is no group's: a Sync, Close (the fsync after it makes it
// durable), an append that failed for lack of space (the next fsync
// does), and, while the writer is idle, run's retry timer (markRetry;
// the next fsync, or Close's, makes that mark durable, as it does every
// group's). A successful group's flush writes it anyway (writeMark).
// Without it a Sync after such a skip found nothing written since the
// last fsync and returned with no mark on disk, and a snapshot Save or
// Subscription.Ack (syncThrough, servedAfterPowerLoss) recorded a seq
// that a reader in another process does not serve. A write that fails
// again for lack of space leaves the mark skipped; any other failure
// fails the writer.
func (w *writer) remark() {
	if w.failed != nil || w.header.Version < 2 || w.markEnd >= w.end || w.durable != w.end {
		return
	}
	if err := w.mark(); err != nil {
		w.fail(err)
	}
}

// markEmpty writes a mark into the active segment when it follows a
// sealed one and holds nothing (a roll whose append was refused, or ran
// out of space; Close): the mark records that the seal before it is
// durable (its fsync returned before the mark was written). Without it,
// the next Open cannot tell damage in the sealed segment from a seal torn
// by a crash during the roll (see recoverListed), and reads it as
// unsealed. The mark is made durable by the next fsync (at the latest,
// Close's). Nothing may be staged: staged events' offsets assume w.end.
func (w *writer) markEmpty() {
	if w.failed != nil || w.idx.Count > 0 || w.end != segment.HeaderSize || w.header.BaseSeq == 1 || len(w.group) > 0 || len(w.buf) > 0 {
		return
	}
	w.markEnd = 0 // nothing recorded in this segment yet
	if err := w.mark(); err != nil {
		w.fail(err)
	}
}

// flush writes the staged group, fsyncs it under SyncAlways, publishes it
// and completes its requests.
func (w *writer) flush() {
	if len(w.group) == 0 {
		return
	}
	n, err := w.f.Write(w.buf)
	indexed := false
	if err == nil && w.opts.Sync == SyncAlways {
		// While the fsync of a large group runs, another goroutine adds
		// it to the index and builds its positions (commit.go): the
		// index is shared with readers, but they read only what a commit
		// published, and this group is not published before its fsync
		// returned.
		var done <-chan struct{}
		if len(w.infos) >= asyncIndexEvents {
			done = w.indexAsync()
		}
		t0 := time.Now()
		err = w.syncFile()
		w.lastFsync = time.Since(t0)
		if done != nil {
			<-done
			indexed = true
		}
	}
	w.lastCalls = w.calls
	if err != nil {
		w.abortGroup(n, err)
		return
	}
	w.end += int64(len(w.buf))
	if w.opts.Sync == SyncAlways {
		w.durable = w.end
	} else if w.dirtySince.IsZero() {
		w.dirtySince = time.Now()
	}
	events := len(w.infos)
	w.lastSeq, w.lastTime = w.nextSeq-1, w.nextTime
	w.streams += w.newStrs
	durable := uint64(0)
	if w.durable == w.end {
		durable = w.lastSeq
	}

	// Under SyncAlways, record the fsync in a mark before the group is
	// published, let alone acknowledged: a reader in another process
	// serves a group only once a mark records it durable, and nothing
	// this process shows (its reads, a snapshot saved from them, an
	// acknowledged seq) may be ahead of what such a reader opened
	// afterwards serves. (The mark itself becomes durable with the next
	// fsync.)
	markAt, marked, markErr := w.writeMark()

	l := w.l
	l.mu.Lock()
	if !indexed {
		w.index()
	}
	w.idx.End = w.end
	if marked {
		w.markedLocked(markAt)
	}
	l.commitLocked(published{seq: w.lastSeq, time: w.lastTime, end: w.end, streams: w.streams}, durable)
	l.mu.Unlock()
	if !indexed {
		w.positions()
	}

	w.undo = w.undo[:0] // the staged versions are committed now
	if w.ids != nil {
		w.ids.commit(w.lastSeq)
	}
	if len(w.versions) >= maxVersionCache {
		clear(w.versions) // a cache: the indexes hold every committed version
	}
	l.stats.group(w.calls, events)
	for _, r := range w.group {
		r.finish(nil)
	}
	w.resetGroup()
	if markErr != nil {
		// The group is durable (its fsync succeeded), so it was
		// acknowledged; but the file may now end in a partial mark.
		w.fail(markErr)
	} else if err := w.maybeCheckpoint(false); err != nil {
		w.fail(err)
	}
}

// resetGroup drops the staged group, undoing its stream versions (none
// are left to undo after a successful flush).
func (w *writer) resetGroup() {
	w.undoTo(0)
	if w.ids != nil {
		w.ids.unstage(0)
		w.ids.req = nil
	}
	clear(w.group)
	clear(w.infos) // their Postings may point into an index rolled away since
	clear(w.infoSV)
	w.buf, w.infos, w.infoSV, w.group, w.undo = w.buf[:0], w.infos[:0], w.infoSV[:0], w.group[:0], w.undo[:0]
	w.partLast, w.stagedName = w.partLast[:0], 0
	if cap(w.buf) > 2*(flushThreshold+w.opts.MaxBatchSize) {
		w.buf = nil // an oversized batch (or a failed encode) grew it: let it go
	}
	w.nextSeq, w.nextTime, w.newStrs, w.calls = w.lastSeq+1, w.lastTime, 0, 0
}

// stop makes the writer finish the queue, sync and exit.
func (w *writer) stop() error {
	w.qmu.Lock()
	w.stopped = true
	w.qmu.Unlock()
	close(w.quit)
	<-w.done
	return w.closeErr
}

func (w *writer) shutdown() {
	var errs []error
	// The background checkpoint, before the file closes (its failure
	// fails the writer, as it would have when it began).
	w.settleCheckpoint()
	w.checkDirSync() // dirsync.go
	w.markEmpty()
	w.remark() // a mark skipped for lack of space (fsync.go)
	if w.failed == nil && w.end > w.durable {
		w.fsync()
	}
	if w.failed == nil && w.end > w.durable {
		w.fsync() // the mark: a closed log has every fsync recorded durably
	}
	if w.failed == nil {
		// So that the next Open reads the index instead of the segment.
		if err := w.maybeCheckpoint(true); err != nil {
			errs = append(errs, fmt.Errorf("evlog: writing the checkpoint of %s: %w", w.name, err))
		}
	}
	// Again: the fsyncs above may have started one (maybeCheckpoint) and
	// the writer failed after, skipping the final checkpoint's wait. None
	// may outlive the file or the lock.
	w.settleCheckpoint()
	if w.failed != nil {
		errs = append(errs, w.failed)
	} else if w.unmarked() {
		errs = append(errs, w.unmarkedErr("free space and open the log again: its recovery records it"))
	}
	errs = append(errs, w.f.Close())
	w.closeErr = errors.Join(errs...)
}
