package evlog

// Staging: encoding requests into the group buffer, assigning seqs and
// stream versions, and undoing them when a request or the group fails.

import (
	"fmt"
	"math"
	"time"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/segment"
)

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
	r.part0 = len(w.partLast)
	var env event.Envelope
	// A typed event with the fields of the one before it but maybe its
	// time (batchSource.same) reuses env, and bound, its size bound
	// without the data (typedSizeBound, which counts the time at its
	// widest).
	bound := 0
	var prevFrame segment.PendingFrame // the last event's frame
	size := 0                          // upper bound of the encoded size, as checkBatch computes it
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
		w.stagedName = max(w.stagedName, len(req.Stream))    // see needRollAt
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
		run := 0 // events left of a run (batchSource.sameRun)
		for j := range n {
			// inRun: the event is the one before's but for what the log
			// assigns, its time included: env holds its fields and time.
			same, inRun := false, false
			if r.src != nil {
				if run > 0 {
					run--
					same, inRun = true, true
				} else if run, same = r.src.sameRun(i, j); run > 0 {
					run--
					inRun = true
				} else if same {
					env.Time = r.src.time(i, j)
				} else {
					r.src.envelope(i, j, &env)
				}
			} else {
				env = req.Events[j]
			}
			if r.src != nil {
				if !same {
					env.Stream = req.Stream
					bound = typedSizeBound(&env, 0) - segment.DataSize(0)
				} else if j == 0 {
					// Only the stream differs from the event before.
					bound += segment.StringSize(len(req.Stream)) - segment.StringSize(len(env.Stream))
				}
			}
			env.Stream = req.Stream
			env.Seq = w.nextSeq
			cur++
			env.Version = cur
			if env.SchemaVersion == 0 {
				env.SchemaVersion = event.DefaultSchemaVersion
			}
			var t int64
			prevTime := w.nextTime // the event before's, when it is in this part
			switch {
			case inRun:
				// The time of the event before, whose t is prevTime
				// (stamped or its own) and env.Time already.
				t = prevTime
			case env.Time.IsZero():
				t = stamp()
			default:
				if t = env.Time.UnixNano(); t < w.nextTime {
					return fail(fmt.Errorf("%w: event %d of stream %q at %s, the log is at %s",
						ErrTimeBackwards, env.Seq-seq0, req.Stream, env.Time.UTC().Format(time.RFC3339Nano), time.Unix(0, w.nextTime).UTC().Format(time.RFC3339Nano)))
				}
			}
			if !inRun {
				env.Time = time.Unix(0, t).UTC()
			}
			off := len(w.buf)
			if r.src != nil {
				// Encode the payload straight into the group buffer.
				var p segment.PendingFrame
				if same && j > 0 {
					// The envelope of the event before but for Seq
					// and Version, each one more, and its time.
					w.buf, p = segment.BeginNextEventFrame(w.buf, prevFrame, prevTime, &env)
				} else {
					w.buf, p = segment.BeginEventFrame(w.buf, &env)
				}
				prevFrame = p
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
				es := bound + segment.DataSize(dn)
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
			var idh uint64 // the ID's hash, if the ID index has it
			if env.ID != "" && w.ids != nil {
				idh = w.ids.idHash(r, int(env.Seq-seq0), env.ID)
				if !w.ids.stage(env.ID, idh, env.Seq) {
					return fail(&DuplicateIDError{ID: env.ID, Stream: req.Stream, Index: j, Reason: "two events of the append share it"})
				}
			}
			var sp *segment.StreamPostings
			if sv.in == w.idx {
				sp = sv.sp
			}
			w.infos = append(w.infos, segment.EventInfo{Seq: env.Seq, Stream: req.Stream, Version: env.Version, Time: t, Off: w.end + int64(off), Len: uint32(n), ID: env.ID, IDHash: idh, Postings: sp})
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
		// r's positions are built from its parts' last events once the
		// group is written (commit.go), off the path to its fsync.
		w.partLast = append(w.partLast, int32(len(w.infos)-1))
	}
	w.buf = segment.AppendCommitFrame(w.buf, segment.Commit{FirstSeq: seq0, Count: uint32(w.nextSeq - seq0), DurableEnd: w.durable})
	if r.src != nil {
		r.events = int(w.nextSeq - seq0)
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
	parts            int // w.partLast
	ids              int // staged event IDs
	seq              uint64
	time             int64
	newStrs          uint64
}

func (w *writer) stageMark() stageMark {
	m := stageMark{buf: len(w.buf), infos: len(w.infos), undo: len(w.undo), parts: len(w.partLast), seq: w.nextSeq, time: w.nextTime, newStrs: w.newStrs}
	if w.ids != nil {
		m.ids = len(w.ids.staged)
	}
	return m
}

// rollback unstages everything staged since m (not w.group: stage adds a
// request only once it succeeded).
func (w *writer) rollback(m stageMark) {
	w.buf, w.infos, w.infoSV = w.buf[:m.buf], w.infos[:m.infos], w.infoSV[:m.infos]
	w.partLast = w.partLast[:m.parts]
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
