package evlog

import (
	"context"
	"fmt"
	"slices"

	"github.com/evlog/evlog/segment"
)

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
