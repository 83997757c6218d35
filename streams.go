package evlog

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/evlog/evlog/segment"
)

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
