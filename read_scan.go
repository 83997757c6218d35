package evlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/evlog/evlog/segment"
)

// corruptFrame converts a Reader error into a CorruptError naming file.
func corruptFrame(err error, file string, lastSeq uint64) error {
	if fe, ok := errors.AsType[*segment.FrameError](err); ok {
		return &segment.CorruptError{File: file, Offset: fe.Offset, Seq: lastSeq, Reason: fe.Reason}
	}
	return fmt.Errorf("evlog: reading %s: %w", file, err)
}

// corruptEvent is the error of an event frame at off of file whose
// payload does not decode (err), after the event of seq.
func corruptEvent(file string, off int64, seq uint64, err error) error {
	return &segment.CorruptError{File: file, Offset: off, Seq: seq, Reason: err.Error()}
}

// activeSparse returns a copy of the active index's sparse entries.
func (l *Log) activeSparse(v *view) ([]segment.SparseEntry, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return v.active.Sparse()
}

// inView calls fn with the view as published now, referenced during the
// call; a done ctx ends it first (before the first event, not after
// ctxCheckEvery of them).
func (l *Log) inView(ctx context.Context, fn func(v *view, pub published) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v, pub, err := l.acquire()
	if err != nil {
		return err
	}
	defer v.unref()
	return fn(v, pub)
}

// clampRange returns the seqs of [from, to] (from 0: 1; to 0: the last
// published) that pub publishes; ok is false when there are none.
func clampRange(pub published, from, to uint64) (uint64, uint64, bool) {
	from = max(from, 1)
	if to == 0 || to > pub.seq {
		to = pub.seq
	}
	return from, to, from <= to
}

// segmentsIn yields the segments of v that may hold seqs [from, to], in
// seq order.
func segmentsIn(v *view, from, to uint64) iter.Seq[*segHandle] {
	return func(yield func(*segHandle) bool) {
		for i := max(v.findSeq(from), 0); i < len(v.segs); i++ {
			s := v.segs[i]
			if s.FirstSeq() > to || !yield(s) {
				return
			}
		}
	}
}

// sparseOf returns the sparse index of s (of view v): a sealed
// segment's summary's (read once per segment) or a copy of the active
// index's.
func (l *Log) sparseOf(v *view, s *segHandle) ([]segment.SparseEntry, error) {
	if !s.Sealed {
		return l.activeSparse(v)
	}
	sum, err := s.Summary()
	if err != nil {
		return nil, err
	}
	return sum.Sparse, nil
}

// scan calls fn for each event with seq in [from, to] (to == 0: the last
// visible), in order. e.Data aliases a read buffer and is valid only
// during the call.
func (l *Log) scan(ctx context.Context, from, to uint64, fn func(e *Envelope) error) error {
	return l.inView(ctx, func(v *view, pub published) error { return l.scanIn(ctx, v, pub, from, to, fn) })
}

// scanIn is scan over the view v (referenced by the caller) as pub
// publishes it.
func (l *Log) scanIn(ctx context.Context, v *view, pub published, from, to uint64, fn func(e *Envelope) error) error {
	from, to, ok := clampRange(pub, from, to)
	if !ok {
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
	from, to, ok := clampRange(pub, from, to)
	if !ok {
		return nil
	}
	var (
		r   segment.Reader
		dec segment.Decoder
		env Envelope
		n   int
	)
	for s := range segmentsIn(v, from, to) {
		ra, end, err := s.Records()
		if err != nil {
			return err
		}
		if !s.Sealed {
			end = pub.end
		}
		sparse, err := l.sparseOf(v, s)
		if err != nil {
			return err
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
				return corruptEvent(s.Name, f.Offset, prev, err)
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
