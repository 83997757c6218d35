package evlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sort"
	"time"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/segment"
)

// errStop ends an internal scan early without an error.
var errStop = errors.New("stop")

// ctxCheckEvery is how often (in events) long reads check their context.
const ctxCheckEvery = 256

// Events returns an iterator over the log's events in seq order, from seq
// from (0 or 1: the beginning) through the last event visible when the
// iteration starts. A read error (corruption, I/O, ctx) ends the iteration
// with that error; the iteration never silently stops short. ctx is checked
// before the first event and then every few hundred: an iteration begun
// with a done ctx yields only its error.
//
// The yielded envelopes are the caller's: their Meta and Data are never
// reused or modified by the log (Data is carved out of shared, read-only
// blocks, so keeping one event keeps its block of up to 64 KiB alive).
//
// Events that read as gone — deleted (DeleteStream, TruncateStream,
// TombstoneStream) or beyond Options.Retention — are skipped, as by every
// read: seqs are never renumbered, so the yielded seqs have holes there
// (docs/FORMAT.md, "Deletion and retention").
func (l *Log) Events(ctx context.Context, from uint64) iter.Seq2[Envelope, error] {
	return iterate(func(fn func(*Envelope) error) error { return l.scan(ctx, from, 0, fn) }, copier)
}

// Range is Events limited to seqs in [from, to] (inclusive; to beyond the
// last visible event means the last). When to < from — in particular when
// to is 0, as SeqAt returns for a time before the first event — it yields
// nothing.
func (l *Log) Range(ctx context.Context, from, to uint64) iter.Seq2[Envelope, error] {
	return iterate(func(fn func(*Envelope) error) error { return l.scanRange(ctx, from, to, fn) }, copier)
}

// RangeBorrowed is Range without the copy of each event's payload: the
// yielded envelope's Data aliases the log's read buffer and is valid only
// until the loop body returns (the next event overwrites it). Everything
// else in the envelope (its strings, Meta, Time) is the caller's to keep.
// It is for folds that look at Data (or decode it) but keep nothing that
// aliases it, which then read without the copy and its allocation;
// replay.Run uses it for a Spec with NoCopy set.
func (l *Log) RangeBorrowed(ctx context.Context, from, to uint64) iter.Seq2[Envelope, error] {
	return iterate(func(fn func(*Envelope) error) error { return l.scanRange(ctx, from, to, fn) }, lender)
}

// lender returns the conversion that hands out the visited envelope itself:
// its Data is valid only during the call.
func lender() func(*Envelope) (Envelope, error) {
	return func(e *Envelope) (Envelope, error) { return *e, nil }
}

// scanRange is scan for [from, to] where to == 0 means nothing (Range's
// contract), not "to the end" (scan's).
func (l *Log) scanRange(ctx context.Context, from, to uint64, fn func(*Envelope) error) error {
	if to == 0 || to < from {
		return nil
	}
	return l.scan(ctx, from, to, fn)
}

// Stream returns an iterator over one stream's events in version order,
// from version fromVersion (0 or 1: the first). Its cost is proportional to
// the stream's events plus one small index look-up per sealed segment (most
// answered by an in-memory bloom filter); it never scans the log.
func (l *Log) Stream(ctx context.Context, stream string, fromVersion uint64) iter.Seq2[Envelope, error] {
	return iterate(func(fn func(*Envelope) error) error { return l.scanStream(ctx, stream, fromVersion, fn) }, copier)
}

// iterate turns a callback scan into an iterator. newConvert is called once
// per iteration and returns the conversion of each visited envelope (valid
// only during the call) into the yielded value; a conversion or scan error
// ends the iteration with that error.
func iterate[V any](scan func(fn func(*Envelope) error) error, newConvert func() func(*Envelope) (V, error)) iter.Seq2[V, error] {
	return func(yield func(V, error) bool) {
		convert := newConvert()
		err := scan(func(e *Envelope) error {
			v, err := convert(e)
			if err != nil {
				return err
			}
			if !yield(v, nil) {
				return errStop
			}
			return nil
		})
		if err != nil && err != errStop {
			var zero V
			yield(zero, err)
		}
	}
}

// copier returns a conversion handing out envelopes the caller owns: Data
// is copied (out of shared slabs).
func copier() func(*Envelope) (Envelope, error) {
	var sl slab
	return func(e *Envelope) (Envelope, error) {
		out := *e
		out.Data = sl.copy(e.Data)
		return out, nil
	}
}

// slab hands out copies of payloads carved from shared blocks, so that
// reading does not allocate once per event. Blocks are never written again
// after a slice of them is handed out.
type slab struct{ buf []byte }

const slabSize = 64 << 10

func (s *slab) copy(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	if len(b) > slabSize/4 {
		return append([]byte(nil), b...)
	}
	if cap(s.buf)-len(s.buf) < len(b) {
		s.buf = make([]byte, 0, slabSize)
	}
	start := len(s.buf)
	s.buf = append(s.buf, b...)
	return s.buf[start:len(s.buf):len(s.buf)]
}

// corruptFrame converts a Reader error into a CorruptError naming file.
func corruptFrame(err error, file string, lastSeq uint64) error {
	if fe, ok := errors.AsType[*segment.FrameError](err); ok {
		return &segment.CorruptError{File: file, Offset: fe.Offset, Seq: lastSeq, Reason: fe.Reason}
	}
	return fmt.Errorf("evlog: reading %s: %w", file, err)
}

// activeSparse returns a copy of the active index's sparse entries.
func (l *Log) activeSparse(v *view) ([]segment.SparseEntry, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return v.active.Sparse()
}

// scan calls fn for each event with seq in [from, to] (to == 0: the last
// visible), in order. e.Data aliases a read buffer and is valid only
// during the call.
func (l *Log) scan(ctx context.Context, from, to uint64, fn func(e *Envelope) error) error {
	if err := ctx.Err(); err != nil {
		return err // before the first event, not after ctxCheckEvery of them
	}
	v, pub, err := l.acquire()
	if err != nil {
		return err
	}
	defer v.unref()
	return l.scanIn(ctx, v, pub, from, to, fn)
}

// scanIn is scan over the view v (referenced by the caller) as pub
// publishes it.
func (l *Log) scanIn(ctx context.Context, v *view, pub published, from, to uint64, fn func(e *Envelope) error) error {
	from = max(from, 1)
	if to == 0 || to > pub.seq {
		to = pub.seq
	}
	if from > to {
		return nil
	}
	fn, err := l.hideGone(ctx, v, pub, fn) // deletion.go
	if err != nil {
		return err
	}
	return l.scanAllIn(ctx, v, pub, from, to, fn)
}

// scanAllIn is scanIn without hiding the events that read as gone
// (deleted, truncated, expired but not compacted yet): the writer's ID
// check sees them, so a retry never writes deleted events again.
func (l *Log) scanAllIn(ctx context.Context, v *view, pub published, from, to uint64, fn func(e *Envelope) error) error {
	from = max(from, 1)
	if to == 0 || to > pub.seq {
		to = pub.seq
	}
	if from > to {
		return nil
	}
	var (
		r   segment.Reader
		dec segment.Decoder
		env Envelope
		n   int
	)
	for i := max(v.findSeq(from), 0); i < len(v.segs); i++ {
		s := v.segs[i]
		if s.FirstSeq() > to {
			break
		}
		var sparse []segment.SparseEntry
		ra, end, err := s.Records()
		if err != nil {
			return err
		}
		if s.Sealed {
			sum, err := s.Summary()
			if err != nil {
				return err
			}
			sparse = sum.Sparse
		} else {
			if sparse, err = l.activeSparse(v); err != nil {
				return err
			}
			end = pub.end
		}
		r.Reset(ra, segment.SeekSeq(sparse, from), end)
		prev := uint64(0)
		for {
			f, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return corruptFrame(err, s.Name, prev)
			}
			if f.Kind != segment.KindEvent {
				continue
			}
			if err := dec.Decode(f.Payload, &env); err != nil {
				return &segment.CorruptError{File: s.Name, Offset: f.Offset, Seq: prev, Reason: err.Error()}
			}
			if prev != 0 && env.Seq != prev+1 {
				return &segment.CorruptError{File: s.Name, Offset: f.Offset, Seq: prev, Reason: fmt.Sprintf("event seq %d follows %d", env.Seq, prev)}
			}
			prev = env.Seq
			if env.Seq < from {
				continue
			}
			if env.Seq > to {
				return nil
			}
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if err := fn(&env); err != nil {
				return err
			}
			if env.Seq == to {
				return nil // never read (or trip over) what lies beyond
			}
		}
	}
	return nil
}

// scanStream calls fn for each event of stream from version fromVersion,
// in order. e.Data is valid only during the call.
func (l *Log) scanStream(ctx context.Context, stream string, fromVersion uint64, fn func(e *Envelope) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v, pub, err := l.acquire()
	if err != nil {
		return err
	}
	defer v.unref()
	fromVersion, fn, err = l.hideGoneStream(ctx, v, pub, stream, fromVersion, fn, false) // deletion.go
	if err != nil || fn == nil {
		return err
	}
	return l.scanStreamIn(ctx, v, pub, stream, fromVersion, 0, fn)
}

// scanStreamIn is scanStream in (v, pub), skipping the sealed segments
// whose events all have seqs up to afterSeq, and hiding nothing.
func (l *Log) scanStreamIn(ctx context.Context, v *view, pub published, stream string, fromVersion, afterSeq uint64, fn func(e *Envelope) error) error {
	fromVersion = max(fromVersion, 1)
	var (
		er    segment.EventReader
		dec   segment.Decoder
		env   Envelope
		posts []segment.Posting
		next  uint64 // version the next event must have (0: not known yet)
		n     int
	)
	for _, s := range v.segs {
		var first uint64
		if s.Sealed {
			if s.Trailer.LastSeq <= afterSeq {
				continue
			}
			e, ok, err := s.Lookup(stream)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if e.FirstVersion+uint64(e.Count)-1 < fromVersion {
				next = e.FirstVersion + uint64(e.Count)
				continue
			}
			if posts, err = s.Postings(e, posts); err != nil {
				return err
			}
			first = e.FirstVersion
		} else {
			l.mu.RLock()
			sp, ok, err := v.active.Stream(stream)
			l.mu.RUnlock()
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			// Only what was published when the iteration started.
			k := sort.Search(len(sp.Posts), func(i int) bool { return sp.Posts[i].Off >= pub.end })
			posts, first = sp.Posts[:k], sp.FirstVersion
		}
		if next != 0 && first != next {
			return &segment.CorruptError{File: s.Name, Reason: fmt.Sprintf("stream %q resumes at version %d, want %d", stream, first, next)}
		}
		skip := uint64(0)
		if fromVersion > first {
			skip = min(fromVersion-first, uint64(len(posts)))
		}
		want := first + skip
		next = first + uint64(len(posts))
		ra, _, err := s.Records()
		if err != nil {
			return err
		}
		err = er.Read(ra, s.Name, posts[skip:], func(off int64, p []byte) error {
			if err := dec.Decode(p, &env); err != nil {
				return &segment.CorruptError{File: s.Name, Offset: off, Reason: err.Error()}
			}
			if env.Stream != stream || env.Version != want {
				return &segment.CorruptError{File: s.Name, Offset: off, Reason: fmt.Sprintf("index points at %q version %d, want %q version %d", env.Stream, env.Version, stream, want)}
			}
			want++
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			return fn(&env)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// StreamVersion returns the stream's current version (0: no such stream)
// as visible now. Deleted versions count: a soft-deleted stream's next
// append gets StreamVersion + 1 (see DeletedBefore).
func (l *Log) StreamVersion(ctx context.Context, stream string) (uint64, error) {
	v, pub, err := l.acquire()
	if err != nil {
		return 0, err
	}
	defer v.unref()
	return l.streamVersionIn(v, pub, stream)
}

// streamVersionIn is StreamVersion in (v, pub).
func (l *Log) streamVersionIn(v *view, pub published, stream string) (uint64, error) {
	for i := len(v.segs) - 1; i >= 0; i-- {
		s := v.segs[i]
		if s.Sealed {
			e, ok, err := s.Lookup(stream)
			if err != nil {
				return 0, err
			}
			if ok {
				return e.FirstVersion + uint64(e.Count) - 1, nil
			}
			continue
		}
		l.mu.RLock()
		sp, ok, err := v.active.Stream(stream)
		l.mu.RUnlock()
		if err != nil {
			return 0, err
		}
		if ok {
			k := sort.Search(len(sp.Posts), func(i int) bool { return sp.Posts[i].Off >= pub.end })
			if k > 0 {
				return sp.FirstVersion + uint64(k) - 1, nil
			}
		}
	}
	return 0, nil
}

// SeqAt returns the seq of the last event recorded at or before t (0 if
// none). Recorded times never decrease in seq order, so the events with
// seq <= SeqAt(t) are exactly those recorded at or before t. It binary
// searches the segments' time ranges, then a sparse time index, and reads
// at most a few hundred events. It returns ctx's error if ctx is done.
func (l *Log) SeqAt(ctx context.Context, t time.Time) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	v, pub, err := l.acquire()
	if err != nil {
		return 0, err
	}
	defer v.unref()
	if pub.seq == 0 || t.Before(segment.MinTime) {
		return 0, nil
	}
	if t.After(segment.MaxTime) {
		return pub.seq, nil
	}
	tn := t.UnixNano()
	firstTime := func(i int) (int64, bool) {
		s := v.segs[i]
		if s.Sealed {
			return s.Trailer.FirstTime, s.Trailer.Count > 0
		}
		l.mu.RLock()
		defer l.mu.RUnlock()
		return v.active.FirstTime, v.active.Count > 0 && v.active.FirstSeq() <= pub.seq
	}
	// The last segment holding an event recorded at or before t.
	i := sort.Search(len(v.segs), func(i int) bool {
		ft, ok := firstTime(i)
		return !ok || ft > tn
	}) - 1
	if i < 0 {
		return 0, nil
	}
	s := v.segs[i]
	var sparse []segment.SparseEntry
	if s.Sealed && s.Trailer.LastTime <= tn {
		return s.Trailer.LastSeq, nil
	}
	ra, end, err := s.Records()
	if err != nil {
		return 0, err
	}
	if s.Sealed {
		sum, err := s.Summary()
		if err != nil {
			return 0, err
		}
		sparse = sum.Sparse
	} else {
		if sparse, err = l.activeSparse(v); err != nil {
			return 0, err
		}
		end = pub.end
	}
	off, ok := segment.SeekTime(sparse, tn)
	if !ok {
		return 0, &segment.CorruptError{File: s.Name, Reason: "sparse index disagrees with the segment's first time"}
	}
	var (
		r    segment.Reader
		dec  segment.Decoder
		env  event.Envelope
		best uint64
	)
	r.Reset(ra, off, end)
	for {
		f, err := r.Next()
		if err == io.EOF {
			return best, nil
		}
		if err != nil {
			return 0, corruptFrame(err, s.Name, best)
		}
		if f.Kind != segment.KindEvent {
			continue
		}
		if err := dec.Decode(f.Payload, &env); err != nil {
			return 0, &segment.CorruptError{File: s.Name, Offset: f.Offset, Reason: err.Error()}
		}
		if env.Time.UnixNano() > tn || env.Seq > pub.seq {
			return best, nil
		}
		best = env.Seq
	}
}
