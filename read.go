package evlog

import (
	"context"
	"errors"
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
	if s.Sealed && s.Trailer.LastTime <= tn {
		return s.Trailer.LastSeq, nil
	}
	ra, end, err := s.Records()
	if err != nil {
		return 0, err
	}
	if !s.Sealed {
		end = pub.end
	}
	sparse, err := l.sparseOf(v, s)
	if err != nil {
		return 0, err
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
