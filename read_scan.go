package evlog

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/evlog/evlog/segment"
)

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
