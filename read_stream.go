package evlog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/evlog/evlog/segment"
)

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
// whose events all have seqs up to afterSeq, and hiding nothing. A system
// stream (the deletion stream, looked up at every open) is in few
// segments: for it the others are passed over by their bloom filters
// (Segment.MayContain) without decoding and keeping their summaries. A
// *segment.CorruptError returned by fn without a File (an event whose
// content fn finds invalid) is given the segment's name and the event's
// frame offset, so that the damage is named like any other.
func (l *Log) scanStreamIn(ctx context.Context, v *view, pub published, stream string, fromVersion, afterSeq uint64, fn func(e *Envelope) error) error {
	fromVersion = max(fromVersion, 1)
	var (
		er     segment.EventReader
		dec    segment.Decoder
		env    Envelope
		posts  []segment.Posting
		next   uint64 // version the next event must have (0: not known yet)
		n      int
		sumBuf []byte // for MayContain
	)
	system := strings.HasPrefix(stream, SystemStreamPrefix)
	for _, s := range v.segs {
		var first uint64
		if s.Sealed {
			if s.Trailer.LastSeq <= afterSeq {
				continue
			}
			if system {
				ok, err := s.MayContain(stream, &sumBuf)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
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
			err := fn(&env)
			if ce, ok := errors.AsType[*segment.CorruptError](err); ok && ce.File == "" {
				ce.File, ce.Offset = s.Name, off
			}
			return err
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
