package evlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// request is one Append/AppendBatch (or Sync) call waiting for the writer.
type request struct {
	batch  []AppendRequest
	src    batchSource // a typed batch, encoded by the writer (batch is nil)
	size   int         // upper bound of the encoded size (typed: once staged)
	events int
	sync   bool  // a Sync call: no events
	now    int64 // the clock's reading for the batch, once read

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

// writer is the single goroutine that sequences, encodes, writes and
// fsyncs appends. Everything below the queue fields is owned by it.
type writer struct {
	l    *Log
	opts Options

	tombs tombstones // deletion_writer.go

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
	ckptEnd int64          // prefix end of the active segment's newest checkpoint (0: none)
	markBuf []byte
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
	group    []*request
	undo     []undoEntry
	nextSeq  uint64 // seq the next staged event gets
	nextTime int64  // recorded time of the last staged event
	newStrs  uint64 // streams begun by the staged events
	spare    []*request
	calls    int            // append calls in the group
	penc     payloadEncoder // encodes typed payloads into buf

	ids *idIndex // event IDs (dedupe.go); nil until an append carries one

	// Adaptive group commit (see gather).
	lastCalls   int           // append calls in the last group written
	lastFsync   time.Duration // duration of its fsync
	gatherTimer *time.Timer
}

// streamVersion is a stream's entry in the version cache: a pointer, so
// that staging a request updates it without looking the stream up again.
// sp is the stream's postings entry in the index in (set once a flush
// added the stream's events there): while in is the active index, staging
// passes it to Index.AddBatch, so an event costs one map look-up (this
// cache), not two.
type streamVersion struct {
	v  uint64
	sp *segment.StreamPostings
	in *segment.Index
}

type undoEntry struct {
	sv  *streamVersion
	old uint64
}

// undoTo restores the stream versions changed by the undo entries from
// mark on, newest first.
func (w *writer) undoTo(mark int) {
	for i := len(w.undo) - 1; i >= mark; i-- {
		w.undo[i].sv.v = w.undo[i].old
	}
	w.undo = w.undo[:mark]
}

// maxVersionCache bounds the writer's stream-version cache.
const maxVersionCache = 1 << 20

// flushThreshold makes the writer write out a group once its buffer holds
// this much, so a burst of appends never needs an unbounded buffer.
const flushThreshold = 8 << 20

func startWriter(l *Log, rec *recovered) (*writer, error) {
	w := &writer{
		l: l, opts: l.opts,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		versions: make(map[string]*streamVersion),
	}
	w.penc.reset()
	w.lastSeq, w.lastTime, w.streams = l.pub.seq, l.pub.time, l.pub.streams
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

// openActive opens the newest segment for appending, truncating its torn
// tail first.
func (w *writer) openActive(rec *recovered) error {
	s := rec.segs[len(rec.segs)-1]
	f, err := w.l.fs.OpenReadWrite(s.Name)
	if err != nil {
		return fmt.Errorf("evlog: opening %s for appending: %w", s.Name, err)
	}
	end := rec.active.End
	if t := rec.report.TornTail; t != nil {
		if err := f.Truncate(end); err != nil {
			return errors.Join(fmt.Errorf("evlog: recovery: truncating the torn tail of %s: %w", s.Name, err), f.Close())
		}
	}
	// What recovery read may still be only in the page cache (a previous
	// writer under SyncNever, or one that crashed before its fsync): make
	// it durable before building on it. This also makes a truncation
	// durable.
	if err := f.Sync(); err != nil {
		return errors.Join(fmt.Errorf("evlog: recovery: syncing %s: %w", s.Name, err), f.Close())
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		return errors.Join(fmt.Errorf("evlog: seeking in %s: %w", s.Name, err), f.Close())
	}
	w.f, w.name, w.hdr, w.header, w.idx = f, s.Name, s.HeaderBytes, s.Header, rec.active
	w.end, w.durable = end, end
	w.markEnd = rec.active.Durable
	if b := rec.active.Base(); b != nil {
		w.ckptEnd = b.End
	}
	if w.markEnd+segment.MarkFrameSize == end {
		w.markEnd = end // the file ends with the mark recording the rest
	}
	// Record on disk that what recovery kept is durable now.
	if err := w.mark(); err != nil {
		return errors.Join(err, f.Close())
	}
	return nil
}

// upgradeActive moves appending off a newest segment of format version 1,
// which takes no marks (a version 1 reader would take one for a torn
// tail), so that what is appended from now on is recorded as durable
// (docs/FORMAT.md, "Recovery"): a version 1 segment holding events is
// sealed by a roll; an empty one (its header, fsynced at creation) is
// replaced by a version 2 segment under the same name — an atomic rename
// over a file that holds no event.
func (w *writer) upgradeActive() error {
	if w.header.Version >= 2 {
		return nil
	}
	if w.idx.Count > 0 {
		err := w.roll()
		if err != nil && w.failed == nil {
			// Out of space for the new segment: nothing changed; go on
			// appending to the version 1 segment, without marks.
			w.l.logger.Warn("evlog: could not move appends to a version 2 segment; appending to the version 1 segment without durability marks", "file", w.name, "err", err)
			return nil
		}
		return err
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("evlog: closing %s: %w", w.name, err)
	}
	w.f = nopFile{}
	return w.startSegment(true)
}

// nopFile stands in for a closed active segment while it is replaced.
type nopFile struct{ vfs.File }

func (nopFile) Close() error { return nil }

// strictFlag is the header flag of the segments this writer creates:
// FlagStrict when it acknowledges appends only once durable (SyncAlways).
// Readers in other processes follow it until the segment's first mark.
func (w *writer) strictFlag() uint16 {
	if w.opts.Sync == SyncAlways {
		return segment.FlagStrict
	}
	return 0
}

// startSegment creates a new active segment after the last committed seq
// and publishes a view holding it. The previous active segment, if any,
// must already be sealed and closed by the caller; with replaceEmpty it is
// an empty segment under the same name, replaced atomically.
func (w *writer) startSegment(replaceEmpty bool) error {
	h := segment.Header{LogID: w.l.logID, BaseSeq: w.lastSeq + 1, Created: time.Now(), Flags: w.strictFlag()}
	create := segment.Create
	if replaceEmpty {
		create = segment.ReplaceEmpty
	}
	f, hb, err := create(w.l.fs, h)
	if err != nil {
		return err
	}
	name := segment.FormatFileName(h.BaseSeq, 0)
	seg, err := segment.Open(w.l.fs, name)
	if err != nil {
		return errors.Join(err, f.Close())
	}
	w.f, w.name, w.hdr, w.header = f, name, hb, seg.Header
	w.idx = segment.NewIndex(h.BaseSeq)
	w.end, w.durable, w.markEnd, w.ckptEnd = segment.HeaderSize, segment.HeaderSize, segment.HeaderSize, 0
	w.dirtySince = time.Time{}
	l := w.l
	l.mu.Lock()
	var segs []*segHandle
	if l.v != nil {
		segs = append(segs, l.v.segs...)
		if l.v.active != nil { // the caller replaced the old active segment
			segs = segs[:len(segs)-1]
		}
	}
	w.publishView(append(segs, w.l.segHandle(seg)), w.idx)
	l.pub.end = segment.HeaderSize
	l.mu.Unlock()
	return nil
}

// publishView installs a new view; l.mu is held.
func (w *writer) publishView(segs []*segHandle, active *segment.Index) {
	old := w.l.v
	w.l.v = newView(segs, active)
	if old != nil {
		old.unref()
	}
}

// submit queues r and waits for its outcome (see Append for ctx).
func (w *writer) submit(ctx context.Context, r *request) error {
	w.qmu.Lock()
	if w.stopped {
		w.qmu.Unlock()
		return ErrClosed
	}
	w.queue = append(w.queue, r)
	w.qmu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
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

func (w *writer) run() {
	defer close(w.done)
	var tick <-chan time.Time
	if d := w.opts.Sync.interval(); d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-w.wake:
			w.drain()
		case <-tick:
			if w.failed == nil && w.end > w.durable {
				w.fsync()
			}
		case <-w.quit:
			w.drain()
			w.shutdown()
			return
		}
	}
}

// drain processes the queue until it is empty.
func (w *writer) drain() {
	for {
		w.gather()
		w.qmu.Lock()
		q := w.queue
		w.queue = w.spare[:0]
		w.qmu.Unlock()
		if len(q) == 0 {
			w.spare = q
			return
		}
		for _, r := range q {
			w.take(r)
		}
		w.flush()
		clear(q)
		w.spare = q
		// Under load the queue never empties and run's ticker is never
		// read: honour SyncInterval between groups too.
		if d := w.opts.Sync.interval(); d > 0 && w.failed == nil && !w.dirtySince.IsZero() && time.Since(w.dirtySince) >= d {
			w.fsync()
		}
	}
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
	if w.opts.Sync != SyncAlways || w.lastCalls < 2 || w.lastFsync <= 0 {
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

// take stages one request, flushing and rolling first when needed.
func (w *writer) take(r *request) {
	if !r.state.CompareAndSwap(reqPending, reqTaken) {
		return // canceled by its caller before it was sequenced
	}
	if w.failed != nil {
		r.finish(w.failed)
		return
	}
	if r.sync {
		w.flush()
		if w.failed == nil && w.end > w.durable {
			w.fsync()
		}
		r.finish(w.failed)
		return
	}
	if !noDedupe && w.dedupe(r) { // a retry, or a duplicate ID (dedupe.go)
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
		r.finish(err)
		return
	}
	if len(w.buf) >= flushThreshold {
		w.flush()
	}
}

// needRoll reports whether r does not fit in the active segment after the
// staged requests. An empty segment takes any request (a batch never spans
// segments; a segment may exceed SegmentSize by one batch).
func (w *writer) needRoll(r *request) bool {
	return w.needRollAt(w.stageMark(), r)
}

// needRollAt is needRoll for r staged after m.
func (w *writer) needRollAt(m stageMark, r *request) bool {
	staged := m.seq - w.lastSeq - 1
	return (w.idx.Count > 0 || staged > 0) && w.end+int64(m.buf)+int64(r.size) > w.opts.SegmentSize
}

// version returns the stream's entry in the version cache, holding its
// version after the staged requests.
func (w *writer) version(stream string) (*streamVersion, error) {
	if sv, ok := w.versions[stream]; ok {
		return sv, nil
	}
	v, err := w.idx.LastVersion(stream)
	if err != nil {
		return nil, err
	}
	if v == 0 {
		if v, err = w.sealedVersion(stream); err != nil {
			return nil, err
		}
	}
	sv := &streamVersion{v: v}
	w.versions[stream] = sv
	return sv, nil
}

// sealedVersion looks a stream up in the sealed segments, newest first.
func (w *writer) sealedVersion(stream string) (uint64, error) {
	l := w.l
	l.mu.RLock()
	v := l.v
	v.ref() // compaction may replace the view and close its segments meanwhile
	l.mu.RUnlock()
	defer v.unref()
	for i := len(v.segs) - 1; i >= 0; i-- {
		s := v.segs[i]
		if !s.Sealed {
			continue
		}
		e, ok, err := s.Lookup(stream)
		if err != nil {
			return 0, err
		}
		if ok {
			return e.FirstVersion + uint64(e.Count) - 1, nil
		}
	}
	return 0, nil
}

// stage checks r's expectations, assigns seqs, versions and times, and
// encodes its frames into the group buffer; on error nothing of r stays
// staged.
func (w *writer) stage(r *request) error {
	m := w.stageMark()
	mark, seq0 := m.buf, m.seq
	fail := func(err error) error {
		w.rollback(m)
		return err
	}
	parts := len(r.batch)
	if r.src != nil {
		parts = r.src.parts()
		w.penc.configure()
	}
	r.pos = make([]Position, parts)
	var env event.Envelope
	size := 0 // upper bound of the encoded size, as checkBatch computes it
	// The clock is read once per batch: one batch, one instant (also when
	// a typed batch is staged again after a roll).
	stamp := func() int64 {
		if r.now == 0 {
			r.now = w.opts.Clock().UnixNano()
		}
		return max(r.now, w.nextTime)
	}
	for i := range parts {
		var req AppendRequest
		n := 0
		if r.src != nil {
			req.Stream, req.Expect, n = r.src.part(i)
		} else {
			req = r.batch[i]
			n = len(req.Events)
		}
		if err := w.tombs.check(w, req.Stream); err != nil { // deletion_writer.go
			return fail(err)
		}
		sv, err := w.version(req.Stream)
		if err != nil {
			return fail(err)
		}
		cur := sv.v
		if !req.Expect.Check(cur) {
			return fail(&event.ConflictError{Stream: req.Stream, Expected: req.Expect, Actual: cur})
		}
		for j := range n {
			if r.src != nil {
				r.src.envelope(i, j, &env)
			} else {
				env = req.Events[j]
			}
			env.Stream = req.Stream
			env.Seq = w.nextSeq
			cur++
			env.Version = cur
			if env.SchemaVersion == 0 {
				env.SchemaVersion = event.DefaultSchemaVersion
			}
			var t int64
			if env.Time.IsZero() {
				t = stamp()
			} else if t = env.Time.UnixNano(); t < w.nextTime {
				return fail(fmt.Errorf("%w: event %d of stream %q at %s, the log is at %s",
					ErrTimeBackwards, env.Seq-seq0, req.Stream, env.Time.UTC().Format(time.RFC3339Nano), time.Unix(0, w.nextTime).UTC().Format(time.RFC3339Nano)))
			}
			env.Time = time.Unix(0, t).UTC()
			off := len(w.buf)
			if r.src != nil {
				// Encode the payload straight into the group buffer.
				var p segment.PendingFrame
				w.buf, p = segment.BeginEventFrame(w.buf, &env)
				data := len(w.buf)
				w.penc.w.b = w.buf
				err := r.src.encode(w.penc.enc, i, j)
				w.buf, w.penc.w.b = w.penc.w.b, nil
				if err != nil {
					return fail(fmt.Errorf("%w: encoding event %d (%s) of stream %q: %w", ErrInvalid, j, env.Type, req.Stream, err))
				}
				dn := len(w.buf) - data
				w.buf = segment.EndEventFrame(w.buf, p)
				// The size bound checkBatch computes for raw envelopes.
				es := typedSizeBound(&env, dn)
				if es > w.opts.MaxEventSize {
					return fail(fmt.Errorf("%w: event %d of stream %q encodes to %d bytes, over MaxEventSize (%d)", ErrInvalid, j, req.Stream, es, w.opts.MaxEventSize))
				}
				size += es
			} else {
				w.buf = segment.AppendEventFrame(w.buf, &env)
			}
			n := len(w.buf) - off
			if n > w.opts.MaxEventSize {
				return fail(fmt.Errorf("%w: event of stream %q encodes to %d bytes, over MaxEventSize (%d)", ErrInvalid, req.Stream, n, w.opts.MaxEventSize))
			}
			if env.ID != "" && w.ids != nil && !w.ids.stage(env.ID, env.Seq) {
				return fail(&DuplicateIDError{ID: env.ID, Stream: req.Stream, Index: j, Reason: "two events of the append share it"})
			}
			var sp *segment.StreamPostings
			if sv.in == w.idx {
				sp = sv.sp
			}
			w.infos = append(w.infos, segment.EventInfo{Seq: env.Seq, Stream: req.Stream, Version: env.Version, Time: t, Off: w.end + int64(off), Len: uint32(n), ID: env.ID, Postings: sp})
			w.infoSV = append(w.infoSV, sv)
			if env.Version == 1 {
				w.newStrs++
			}
			w.nextSeq++
			w.nextTime = t
		}
		// version() cached the stream's committed version: the undo entry
		// puts it back if the request or the group fails.
		w.undo = append(w.undo, undoEntry{sv: sv, old: sv.v})
		sv.v = cur
		r.pos[i] = Position{Seq: w.nextSeq - 1, Version: cur, Time: time.Unix(0, w.nextTime).UTC()}
	}
	w.buf = segment.AppendCommitFrame(w.buf, segment.Commit{FirstSeq: seq0, Count: uint32(w.nextSeq - seq0), DurableEnd: w.durable})
	if r.src != nil {
		size += parts * segment.CommitFrameSize
		if r.size = size; size > w.opts.MaxBatchSize {
			return fail(fmt.Errorf("%w: batch of %d events encodes to about %d bytes, over MaxBatchSize (%d); split it", ErrInvalid, w.nextSeq-seq0, size, w.opts.MaxBatchSize))
		}
	}
	if len(w.buf)-mark > w.opts.MaxBatchSize {
		return fail(fmt.Errorf("%w: batch encodes to %d bytes, over MaxBatchSize (%d); split it", ErrInvalid, len(w.buf)-mark, w.opts.MaxBatchSize))
	}
	w.group = append(w.group, r)
	w.calls++
	w.tombs.staged(w, r) // deletion_writer.go
	return nil
}

// stageMark is the staging state stage starts from; rollback returns to
// it.
type stageMark struct {
	buf, infos, undo int
	ids              int // staged event IDs
	seq              uint64
	time             int64
	newStrs          uint64
}

func (w *writer) stageMark() stageMark {
	m := stageMark{buf: len(w.buf), infos: len(w.infos), undo: len(w.undo), seq: w.nextSeq, time: w.nextTime, newStrs: w.newStrs}
	if w.ids != nil {
		m.ids = len(w.ids.staged)
	}
	return m
}

// rollback unstages everything staged since m (not w.group: stage adds a
// request only once it succeeded).
func (w *writer) rollback(m stageMark) {
	w.buf, w.infos, w.infoSV = w.buf[:m.buf], w.infos[:m.infos], w.infoSV[:m.infos]
	w.undoTo(m.undo)
	if w.ids != nil {
		w.ids.unstage(m.ids)
	}
	w.nextSeq, w.nextTime, w.newStrs = m.seq, m.time, m.newStrs
}

// stageTyped is stage, turning a panic of a typed payload's encoder
// (which runs on this goroutine) into an error the caller re-panics with.
func (w *writer) stageTyped(r *request) (err error) {
	if r.src == nil {
		return w.stage(r)
	}
	m := w.stageMark()
	defer func() {
		if p := recover(); p != nil {
			w.rollback(m)
			w.penc.reset()
			err = &encoderPanic{value: p}
		}
	}()
	return w.stage(r)
}

// typedSizeBound is the bound checkBatch computes for an envelope with
// dataLen bytes of data: its assigned fields at their widest.
func typedSizeBound(env *event.Envelope, dataLen int) int {
	e := *env
	e.Seq, e.Version, e.SchemaVersion, e.Time, e.Data = math.MaxUint64, math.MaxUint64, math.MaxUint32, time.Unix(0, math.MinInt64), nil
	return segment.EncodedSize(&e) - segment.DataSize(0) + segment.DataSize(dataLen)
}

// flush writes the staged group, fsyncs it under SyncAlways, publishes it
// and completes its requests.
func (w *writer) flush() {
	if len(w.group) == 0 {
		return
	}
	n, err := w.f.Write(w.buf)
	if err == nil && w.opts.Sync == SyncAlways {
		t0 := time.Now()
		err = w.syncFile()
		w.lastFsync = time.Since(t0)
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

	l := w.l
	l.mu.Lock()
	w.idx.AddBatch(w.infos)
	for i, sv := range w.infoSV { // AddBatch set every Postings
		sv.sp, sv.in = w.infos[i].Postings, w.idx
	}
	w.idx.End = w.end
	l.pub = published{seq: w.lastSeq, time: w.lastTime, end: w.end, streams: w.streams}
	if w.durable == w.end {
		l.setDurableLocked(w.lastSeq)
	}
	l.broadcastLocked()
	l.mu.Unlock()

	// Under SyncAlways, record the fsync before acknowledging the group:
	// once any append of it returns, a mark says on disk that it is
	// durable (the mark itself becomes durable with the next fsync).
	markErr := w.mark()

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
	}
	clear(w.group)
	clear(w.infos) // their Postings may point into an index rolled away since
	clear(w.infoSV)
	w.buf, w.infos, w.infoSV, w.group, w.undo = w.buf[:0], w.infos[:0], w.infoSV[:0], w.group[:0], w.undo[:0]
	if cap(w.buf) > 2*(flushThreshold+w.opts.MaxBatchSize) {
		w.buf = nil // an oversized batch (or a failed encode) grew it: let it go
	}
	w.nextSeq, w.nextTime, w.newStrs, w.calls = w.lastSeq+1, w.lastTime, 0, 0
}

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
	return nil
}

// fsync makes the committed frames durable (Sync, interval, Close) and
// records it with a mark.
func (w *writer) fsync() {
	if err := w.syncFile(); err != nil {
		w.fail(err)
		return
	}
	w.durable = w.end
	w.dirtySince = time.Time{}
	w.l.mu.Lock()
	w.l.setDurableLocked(w.lastSeq)
	w.l.mu.Unlock()
	if err := w.mark(); err != nil {
		w.fail(err)
	} else if err := w.maybeCheckpoint(false); err != nil {
		w.fail(err)
	}
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
	if w.header.Version < 2 || w.end <= w.markEnd || w.durable != w.end {
		return nil
	}
	at := w.end
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
			w.l.logger.Warn("evlog: no space left to record an fsync in a mark frame; the data is durable, the next mark will record it", "file", w.name, "err", err)
			return nil
		}
		return errors.Join(fmt.Errorf("writing a mark to %s: %w", w.name, err), undoErr)
	}
	w.end += int64(n)
	w.markEnd = w.end
	l := w.l
	l.mu.Lock()
	w.idx.End, w.idx.Durable = w.end, at
	w.idx.Marked, w.idx.Strict = true, strict
	l.pub.end = w.end
	l.mu.Unlock()
	return nil
}

// fail puts the writer in its failed state: every staged and future
// request gets the error. Nothing retries: after an fsync error the page
// cache cannot be trusted, and only reopening (recovery) can say what is
// on disk.
func (w *writer) fail(err error) {
	w.failed = fmt.Errorf("%w: %w", ErrWriterFailed, err)
	w.failedAt.Store(&w.failed)
	w.l.mu.Lock()
	close(w.l.durableCh) // wake WaitDurable: it will see the failure
	w.l.durableCh = make(chan struct{})
	w.l.mu.Unlock()
	w.l.logger.Error("evlog: writer failed; appends are refused until the log is reopened", "err", err)
	for _, r := range w.group {
		r.finish(w.failed)
	}
	w.resetGroup()
}

// roll seals the active segment and starts the next one. The new segment
// is created (durably) first and the old one sealed second, so a sealed
// newest segment always means its successor went missing.
func (w *writer) roll() error {
	if w.idx.Count == 0 {
		// The next segment would start at the same seq, under the same
		// name as the active one, and replace it.
		return nil
	}
	if err := w.l.checkLock(); err != nil {
		w.fail(err) // another writer may be appending: stop before any more damage
		return w.failed
	}
	full, err := w.idx.Materialize() // the footer indexes the whole segment
	if err != nil {
		w.fail(err)
		return w.failed
	}
	h := segment.Header{LogID: w.l.logID, BaseSeq: w.lastSeq + 1, Created: time.Now(), Flags: w.strictFlag()}
	nf, nhb, err := segment.Create(w.l.fs, h)
	if err != nil {
		name := segment.FormatFileName(h.BaseSeq, 0)
		if _, serr := w.l.fs.Stat(name); errors.Is(err, syscall.ENOSPC) && serr != nil {
			// Nothing changed on disk: fail this batch only.
			return fmt.Errorf("evlog: no space left to start a new segment; nothing of this batch was written: %w", err)
		}
		w.fail(err)
		return w.failed
	}
	footer, _ := full.AppendFooter(nil, w.hdr)
	if _, err := w.f.Write(footer); err != nil {
		nf.Close()
		w.fail(fmt.Errorf("sealing %s: %w", w.name, err))
		return w.failed
	}
	if err := w.syncFile(); err != nil {
		nf.Close()
		w.fail(fmt.Errorf("sealing %s: %w", w.name, err))
		return w.failed
	}
	oldName := w.name
	if err := w.f.Close(); err != nil {
		nf.Close()
		w.fail(fmt.Errorf("closing %s: %w", oldName, err))
		return w.failed
	}
	sealed, err := segment.Open(w.l.fs, oldName)
	if err == nil && !sealed.Sealed {
		sealed.Close()
		err = fmt.Errorf("evlog: %s reads back unsealed after sealing", oldName)
	}
	if err != nil {
		nf.Close()
		w.fail(err)
		return w.failed
	}
	name := segment.FormatFileName(h.BaseSeq, 0)
	seg, err := segment.Open(w.l.fs, name)
	if err != nil {
		sealed.Close()
		nf.Close()
		w.fail(err)
		return w.failed
	}
	w.f, w.name, w.hdr, w.header = nf, name, nhb, seg.Header
	w.idx = segment.NewIndex(h.BaseSeq)
	w.end, w.durable, w.markEnd = segment.HeaderSize, segment.HeaderSize, segment.HeaderSize
	w.dirtySince = time.Time{}
	l := w.l
	l.mu.Lock()
	segs := append([]*segHandle(nil), l.v.segs[:len(l.v.segs)-1]...)
	w.publishView(append(segs, w.l.segHandle(sealed), w.l.segHandle(seg)), w.idx)
	l.pub.end = segment.HeaderSize
	l.setDurableLocked(w.lastSeq) // sealing fsynced everything before
	l.mu.Unlock()
	w.dropCheckpoint(oldName)
	return nil
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
	if w.failed != nil {
		errs = append(errs, w.failed)
	}
	errs = append(errs, w.f.Close())
	w.closeErr = errors.Join(errs...)
}

// failure returns the writer's failure, if any; safe from any goroutine.
func (w *writer) failure() error {
	if p := w.failedAt.Load(); p != nil {
		return *p
	}
	return nil
}
