package evlog

import (
	"context"
	"fmt"
	"iter"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

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

// StreamInfo describes one stream of the log: what Streams lists.
type StreamInfo struct {
	Stream   string
	Version  uint64    // its last event's version: its number of events
	FirstSeq uint64    // seq of its first event (version 1)
	LastSeq  uint64    // seq of its last event
	LastTime time.Time // recorded time of its last event (UTC)
	// TruncatedBefore: the versions below it read as gone (deleted with
	// TruncateStream, or beyond Options.Retention's MaxCount); 0: none.
	// FirstSeq stays the seq of the stored version 1.
	TruncatedBefore uint64
}

// Streams returns an iterator over the streams whose names start with
// prefix ("" for all), in name order (byte-wise), as visible when the
// iteration starts. A read error (corruption, I/O, ctx) ends the
// iteration with that error. Streams whose events all read as gone
// (deleted, tombstoned, beyond retention) are not listed; Deletions lists
// the deleted ones.
//
// It is index-backed and never scans event frames: the first call lists
// the stream blocks in the footers of the sealed segments once and keeps a
// catalogue of the streams in memory (a few dozen bytes plus the name per
// stream), extended by the segments sealed since and rebuilt after a
// compaction; the active segment's streams come from its in-memory index.
// A stream's first and last seq and its last time are read from its first
// and last event frames (located by its postings) the first time they are
// listed, and remembered while they stay the same (for the active segment
// too, keyed by frame offset). So a call costs the streams it lists and
// the active segment's index, not the size of the log.
func (l *Log) Streams(ctx context.Context, prefix string) iter.Seq2[StreamInfo, error] {
	return func(yield func(StreamInfo, error) bool) {
		err := l.listStreams(ctx, prefix, func(si StreamInfo) error {
			if !yield(si, nil) {
				return errStop
			}
			return nil
		})
		if err != nil && err != errStop {
			yield(StreamInfo{}, err)
		}
	}
}

// streamCatalog lists the streams of a run of sealed segments (the first
// segments of the log), from their footers. It is guarded by Log.catMu.
type streamCatalog struct {
	segs  []*segHandle // the sealed segments it covers, in log order
	names []string     // sorted
	ents  map[string]*catEntry
}

// catEntry is one stream in the catalogue: the segments holding its first
// and last events, and what was read from those events (zero: not read).
type catEntry struct {
	first, last catLoc
	firstSeq    uint64
	lastSeq     uint64 // of the event at last; reset when last moves
	lastTime    int64
}

// activeSeen is what Streams read of a stream's first and last frames in
// the active segment (a frame below the published end never changes),
// keyed by their offsets.
type activeSeen struct {
	firstOff, lastOff int64
	firstSeq, lastSeq uint64
	lastTime          int64
}

type catLoc struct {
	seg int // index in streamCatalog.segs
	e   segment.StreamEntry
}

// catalogue returns the stream catalogue of v's sealed segments, extending
// or rebuilding the cached one as needed, and the number of segments it
// covers.
func (l *Log) catalogue(ctx context.Context, v *view) (*streamCatalog, error) {
	sealed := v.segs
	for len(sealed) > 0 && !sealed[len(sealed)-1].Sealed {
		sealed = sealed[:len(sealed)-1]
	}
	l.catMu.Lock()
	defer l.catMu.Unlock()
	c := l.cat
	if c == nil || len(c.segs) > len(sealed) || !slices.Equal(c.segs, sealed[:len(c.segs)]) {
		c = &streamCatalog{ents: make(map[string]*catEntry)}
	}
	if len(c.segs) == len(sealed) {
		l.cat = c
		return c, nil
	}
	l.cat = nil // c is inconsistent until it covers sealed
	var added []string
	for i := len(c.segs); i < len(sealed); i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s := sealed[i]
		err := s.StreamEntries(func(name string, e segment.StreamEntry) error {
			loc := catLoc{seg: i, e: e}
			ce := c.ents[name]
			if ce == nil {
				c.ents[name] = &catEntry{first: loc, last: loc}
				added = append(added, name)
				return nil
			}
			if want := ce.last.e.FirstVersion + uint64(ce.last.e.Count); e.FirstVersion != want {
				return &segment.CorruptError{File: s.Name, Reason: fmt.Sprintf("stream %q resumes at version %d, want %d", name, e.FirstVersion, want)}
			}
			ce.last, ce.lastSeq, ce.lastTime = loc, 0, 0
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	c.segs = sealed[:len(sealed):len(sealed)]
	if len(added) > 0 {
		slices.Sort(added)
		c.names = mergeSorted(c.names, added)
	}
	l.cat = c
	return c, nil
}

// mergeSorted returns the sorted union of two sorted, disjoint lists.
func mergeSorted(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0] < b[0] {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// listStreams calls fn with each stream whose name starts with prefix, in
// name order.
func (l *Log) listStreams(ctx context.Context, prefix string, fn func(StreamInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v, pub, err := l.acquire()
	if err != nil {
		return err
	}
	defer v.unref()
	if fn, err = l.hideGoneStreams(ctx, v, pub, fn); err != nil { // deletion.go
		return err
	}
	c, err := l.catalogue(ctx, v)
	if err != nil {
		return err
	}

	// The sealed segments' matches (copied under the lock) ...
	type sealedMatch struct {
		name string
		ent  *catEntry
		e    catEntry
	}
	l.catMu.Lock()
	lo := sort.SearchStrings(c.names, prefix)
	hi := lo + sort.Search(len(c.names)-lo, func(i int) bool { return !strings.HasPrefix(c.names[lo+i], prefix) })
	sealed := make([]sealedMatch, 0, hi-lo)
	for _, name := range c.names[lo:hi] {
		ce := c.ents[name]
		sealed = append(sealed, sealedMatch{name: name, ent: ce, e: *ce})
	}
	l.catMu.Unlock()

	// ... and the active segment's.
	type activeMatch struct {
		name  string
		first uint64
		posts []segment.Posting
	}
	var active []activeMatch
	var activeSeg *segHandle
	if n := len(v.segs); n > 0 && !v.segs[n-1].Sealed {
		activeSeg = v.segs[n-1]
		l.mu.RLock()
		if prefix == "" {
			active = make([]activeMatch, 0, v.active.Streams())
		}
		err := v.active.EachStream(prefix, func(name string, sp segment.StreamPostings) {
			k := sort.Search(len(sp.Posts), func(i int) bool { return sp.Posts[i].Off >= pub.end })
			if k > 0 {
				active = append(active, activeMatch{name: name, first: sp.FirstVersion, posts: sp.Posts[:k]})
			}
		})
		l.mu.RUnlock()
		if err != nil {
			return err
		}
		slices.SortFunc(active, func(a, b activeMatch) int { return strings.Compare(a.name, b.name) })
	}

	var memo map[string]activeSeen
	if activeSeg != nil {
		l.catMu.Lock()
		if l.actSeg != activeSeg {
			l.actSeg, l.actMemo = activeSeg, make(map[string]activeSeen)
		}
		memo = l.actMemo
		l.catMu.Unlock()
	}

	var (
		er    segment.EventReader
		dec   segment.Decoder
		env   Envelope
		posts []segment.Posting
		n     int
	)
	// read decodes the event at p of s, which must be the stream's version
	// ver, into env.
	read := func(s *segHandle, p segment.Posting, stream string, ver uint64) error {
		ra, _, err := s.Records()
		if err != nil {
			return err
		}
		return er.Read(ra, s.Name, []segment.Posting{p}, func(off int64, b []byte) error {
			if err := dec.Decode(b, &env); err != nil {
				return &segment.CorruptError{File: s.Name, Offset: off, Reason: err.Error()}
			}
			if env.Stream != stream || env.Version != ver {
				return &segment.CorruptError{File: s.Name, Offset: off, Reason: fmt.Sprintf("index points at %q version %d, want %q version %d", env.Stream, env.Version, stream, ver)}
			}
			return nil
		})
	}
	// readSealed reads the first (or last) event of the stream's entry in
	// segment loc.
	readSealed := func(loc catLoc, stream string, last bool) error {
		s := v.segs[loc.seg]
		var err error
		if posts, err = s.Postings(loc.e, posts); err != nil {
			return err
		}
		if last {
			return read(s, posts[len(posts)-1], stream, loc.e.FirstVersion+uint64(loc.e.Count)-1)
		}
		return read(s, posts[0], stream, loc.e.FirstVersion)
	}

	for len(sealed) > 0 || len(active) > 0 {
		if n++; n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var (
			sm       *sealedMatch
			am       *activeMatch
			si       StreamInfo
			memoised bool
		)
		switch {
		case len(active) == 0 || len(sealed) > 0 && sealed[0].name < active[0].name:
			sm, sealed = &sealed[0], sealed[1:]
		case len(sealed) == 0 || active[0].name < sealed[0].name:
			am, active = &active[0], active[1:]
		default:
			sm, am, sealed, active = &sealed[0], &active[0], sealed[1:], active[1:]
		}
		if sm != nil {
			si.Stream = sm.name
			si.Version = sm.e.last.e.FirstVersion + uint64(sm.e.last.e.Count) - 1
			if si.FirstSeq = sm.e.firstSeq; si.FirstSeq == 0 {
				if err := readSealed(sm.e.first, sm.name, false); err != nil {
					return err
				}
				si.FirstSeq, memoised = env.Seq, true
			}
			if am == nil {
				si.LastSeq, si.LastTime = sm.e.lastSeq, time.Unix(0, sm.e.lastTime).UTC()
				if si.LastSeq == 0 {
					if err := readSealed(sm.e.last, sm.name, true); err != nil {
						return err
					}
					si.LastSeq, si.LastTime, memoised = env.Seq, env.Time, true
				}
			}
			if memoised {
				l.catMu.Lock()
				sm.ent.firstSeq = si.FirstSeq
				if am == nil && sm.ent.last == sm.e.last {
					sm.ent.lastSeq, sm.ent.lastTime = si.LastSeq, si.LastTime.UnixNano()
				}
				l.catMu.Unlock()
			}
		}
		if am != nil {
			if sm != nil && am.first != si.Version+1 {
				return &segment.CorruptError{File: activeSeg.Name, Reason: fmt.Sprintf("stream %q resumes at version %d, want %d", am.name, am.first, si.Version+1)}
			}
			si.Stream = am.name
			si.Version = am.first + uint64(len(am.posts)) - 1
			firstP, lastP := am.posts[0], am.posts[len(am.posts)-1]
			l.catMu.Lock()
			seen, ok := memo[am.name]
			l.catMu.Unlock()
			if !ok {
				seen = activeSeen{firstOff: -1, lastOff: -1}
			}
			changed := false
			if sm == nil {
				if seen.firstOff != firstP.Off {
					if err := read(activeSeg, firstP, am.name, am.first); err != nil {
						return err
					}
					seen.firstOff, seen.firstSeq, changed = firstP.Off, env.Seq, true
				}
				si.FirstSeq = seen.firstSeq
			}
			if seen.lastOff != lastP.Off {
				if err := read(activeSeg, lastP, am.name, si.Version); err != nil {
					return err
				}
				seen.lastOff, seen.lastSeq, seen.lastTime, changed = lastP.Off, env.Seq, env.Time.UnixNano(), true
			}
			si.LastSeq, si.LastTime = seen.lastSeq, time.Unix(0, seen.lastTime).UTC()
			if changed {
				l.catMu.Lock()
				memo[am.name] = seen
				l.catMu.Unlock()
			}
		}
		if err := fn(si); err != nil {
			return err
		}
	}
	return nil
}
