package evlog

import (
	"context"
	"fmt"
	"iter"
	"math"
	"sort"

	"github.com/evlog/evlog/segment"
)

// StreamBackward returns an iterator over one stream's events in
// descending version order, from version fromVersion (0, or beyond the
// stream's last version: from its last event) down to its first event.
// "The last 20 events of cart-42" is StreamBackward(ctx, "cart-42", 0)
// and a break after the 20th.
//
// It is Stream read from the other end, with Stream's contract: it sees
// the events visible when the iteration starts, checks ctx before the
// first event and then every few hundred, ends with the error of a failed
// read (corruption names the file and offset) and hands out envelopes the
// caller owns. Its cost is proportional to the events yielded (read in
// chunks that double from 32 frames, so a break reads little past it) plus
// one small index look-up per sealed segment read, newest first, until the
// stream's first event or the break; it never scans the log.
func (l *Log) StreamBackward(ctx context.Context, stream string, fromVersion uint64) iter.Seq2[Envelope, error] {
	return iterate(func(fn func(*Envelope) error) error { return l.scanStreamBackward(ctx, stream, fromVersion, fn) }, copier)
}

// Chunks of a backward read, in event frames: the first, and the cap of
// their doubling.
const (
	backChunkMin = 32
	backChunkMax = 1024
)

// scanStreamBackward calls fn for each event of stream from version
// fromVersion (0: the last) down to version 1. e.Data is valid only during
// the call.
func (l *Log) scanStreamBackward(ctx context.Context, stream string, fromVersion uint64, fn func(e *Envelope) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v, pub, err := l.acquire()
	if err != nil {
		return err
	}
	defer v.unref()
	if fromVersion == 0 {
		fromVersion = math.MaxUint64
	}
	if _, fn, err = l.hideGoneStream(ctx, v, pub, stream, fromVersion, fn, true); err != nil || fn == nil { // deletion.go
		return err
	}
	type span struct{ lo, hi int }
	var (
		er      segment.EventReader
		dec     segment.Decoder
		env     Envelope
		postBuf []segment.Posting
		buf     []byte // the payloads of one chunk
		spans   []span
		offs    []int64
		want    uint64 // last version the next (older) segment must hold (0: not known yet)
		chunk   = backChunkMin
		n       int
	)
	for i := len(v.segs) - 1; i >= 0; i-- {
		s := v.segs[i]
		var (
			first uint64
			posts []segment.Posting // the sealed segment's in buf, or the active index's (never written)
		)
		if s.Sealed {
			e, ok, err := s.Lookup(stream)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			first = e.FirstVersion
			if last := first + uint64(e.Count) - 1; want != 0 && last != want {
				return &segment.CorruptError{File: s.Name, Reason: fmt.Sprintf("stream %q ends at version %d here, want %d", stream, last, want)}
			}
			if first > fromVersion {
				want = first - 1
				continue
			}
			if postBuf, err = s.Postings(e, postBuf); err != nil {
				return err
			}
			posts = postBuf
		} else {
			var err error
			if posts, first, err = l.activePostings(v, stream, pub.end); err != nil {
				return err
			}
			if len(posts) == 0 {
				continue
			}
			if first > fromVersion {
				want = first - 1
				continue
			}
		}
		want = first - 1
		hi := len(posts)
		if last := first + uint64(hi) - 1; fromVersion < last {
			hi = int(fromVersion - first + 1)
		}
		ra, _, err := s.Records()
		if err != nil {
			return err
		}
		for hi > 0 {
			lo := max(hi-chunk, 0)
			chunk = min(2*chunk, backChunkMax)
			buf, spans, offs = buf[:0], spans[:0], offs[:0]
			err := er.Read(ra, s.Name, posts[lo:hi], func(off int64, p []byte) error {
				spans = append(spans, span{len(buf), len(buf) + len(p)})
				offs = append(offs, off)
				buf = append(buf, p...)
				return nil
			})
			if err != nil {
				return err
			}
			for k := len(spans) - 1; k >= 0; k-- {
				if err := dec.Decode(buf[spans[k].lo:spans[k].hi:spans[k].hi], &env); err != nil {
					return &segment.CorruptError{File: s.Name, Offset: offs[k], Reason: err.Error()}
				}
				if ver := first + uint64(lo+k); env.Stream != stream || env.Version != ver {
					return &segment.CorruptError{File: s.Name, Offset: offs[k], Reason: fmt.Sprintf("index points at %q version %d, want %q version %d", env.Stream, env.Version, stream, ver)}
				}
				if n++; n%ctxCheckEvery == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				if err := fn(&env); err != nil {
					return err
				}
			}
			hi = lo
		}
	}
	return nil
}

// activePostings returns the stream's postings in the view's active
// segment that lie before end (what was published), and the version of
// the first.
func (l *Log) activePostings(v *view, stream string, end int64) ([]segment.Posting, uint64, error) {
	l.mu.RLock()
	sp, ok, err := v.active.Stream(stream)
	l.mu.RUnlock()
	if err != nil || !ok {
		return nil, 0, err
	}
	k := sort.Search(len(sp.Posts), func(i int) bool { return sp.Posts[i].Off >= end })
	return sp.Posts[:k], sp.FirstVersion, nil
}
