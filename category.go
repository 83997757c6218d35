package evlog

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strings"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/segment"
)

// CategorySeparator separates a stream name's category from its id:
// streams of the category "inventory" are named "inventory-<id>"
// (KurrentDB's convention). A category never contains it; an id may.
const CategorySeparator = event.CategorySeparator

// Category returns an iterator over the events of every stream of the
// category name — the streams named name + "-" + id, for any id (the id
// may itself contain "-": "order-2026-11-25" is in "order", never in
// "order-2026"; an empty one too: the stream "order-", which appends
// accept, is in "order", as for Filter.Categories and Retention) — in seq
// order, from seq from (0 or 1: the beginning)
// through the last event visible when the iteration starts.
//
// It is index-assisted, never a scan of the log's events: in each sealed
// segment it reads the footer's stream blocks (a segment without a stream
// of the category costs no more) and then only the category's event
// frames; in the active segment it uses the in-memory index. Its cost is
// proportional to the category's events plus the number of streams per
// segment. name must be a valid category (event.CheckCategory: non-empty,
// printable, without "-"); otherwise the iteration yields one error
// matching ErrInvalid. Errors, ctx and the yielded envelopes behave as in
// Events.
func (l *Log) Category(ctx context.Context, name string, from uint64) iter.Seq2[Envelope, error] {
	return iterate(func(fn func(*Envelope) error) error { return l.scanCategory(ctx, name, from, fn) }, copier)
}

// catPost is one event of a category within a segment: where its frame
// is, and which stream and version it must hold.
type catPost struct {
	segment.Posting
	stream  int // index in the segment's matching streams
	version uint64
}

// scanCategory calls fn for each event of the category's streams with seq
// >= from, in seq order. e.Data is valid only during the call.
func (l *Log) scanCategory(ctx context.Context, name string, from uint64, fn func(e *Envelope) error) error {
	if err := event.CheckCategory(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	v, pub, err := l.acquire()
	if err != nil {
		return err
	}
	defer v.unref()
	from = max(from, 1)
	if from > pub.seq {
		return nil
	}
	if fn, err = l.hideGone(ctx, v, pub, fn); err != nil { // deletion.go
		return err
	}
	prefix := name + CategorySeparator
	var (
		sealed []segment.PrefixEntry
		active []segment.ActivePrefixEntry
		names  []string
		cps    []catPost
		posts  []segment.Posting
		pbuf   []segment.Posting
		er     segment.EventReader
		dec    segment.Decoder
		env    Envelope
		prev   uint64 // seq of the last event yielded
		n      int
	)
	for i := max(v.findSeq(from), 0); i < len(v.segs); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := v.segs[i]
		if s.FirstSeq() > pub.seq {
			break
		}
		names, cps = names[:0], cps[:0]
		var sparse []segment.SparseEntry
		if s.Sealed {
			if sealed, err = s.StreamsWithPrefix(prefix, sealed[:0]); err != nil {
				return err
			}
			if len(sealed) == 0 {
				continue // no stream of the category in this segment
			}
			total := 0
			for _, e := range sealed {
				total += int(e.Count)
			}
			cps = slices.Grow(cps, total)
			for _, e := range sealed {
				if pbuf, err = s.Postings(e.StreamEntry, pbuf); err != nil {
					return err
				}
				for k, p := range pbuf {
					cps = append(cps, catPost{Posting: p, stream: len(names), version: e.FirstVersion + uint64(k)})
				}
				names = append(names, e.Name)
			}
			if from > s.FirstSeq() {
				sum, err := s.Summary()
				if err != nil {
					return err
				}
				sparse = sum.Sparse
			}
		} else {
			l.mu.RLock()
			var err error
			active, err = v.active.StreamsWithPrefix(prefix, active[:0])
			if err == nil && from > s.FirstSeq() {
				sparse, err = v.active.Sparse()
			}
			l.mu.RUnlock()
			if err != nil {
				return err
			}
			total := 0
			for _, e := range active {
				total += len(e.Posts)
			}
			cps = slices.Grow(cps, total)
			for _, e := range active {
				// Only what was published when the iteration started.
				k := sort.Search(len(e.Posts), func(i int) bool { return e.Posts[i].Off >= pub.end })
				for j, p := range e.Posts[:k] {
					cps = append(cps, catPost{Posting: p, stream: len(names), version: e.FirstVersion + uint64(j)})
				}
				names = append(names, e.Name)
			}
		}
		if len(cps) == 0 {
			continue
		}
		// Frames lie in seq order in a segment: offset order is seq order.
		// Each stream's postings are in order already.
		if len(names) > 1 {
			slices.SortFunc(cps, func(a, b catPost) int { return cmp.Compare(a.Off, b.Off) })
		}
		if sparse != nil {
			// Skip the frames before the sparse entry at or before from.
			start := segment.SeekSeq(sparse, from)
			cps = cps[sort.Search(len(cps), func(i int) bool { return cps[i].Off >= start }):]
		}
		posts = slices.Grow(posts[:0], len(cps))
		for _, c := range cps {
			posts = append(posts, c.Posting)
		}
		ra, _, err := s.Records()
		if err != nil {
			return err
		}
		k := 0
		err = er.Read(ra, s.Name, posts, func(off int64, p []byte) error {
			want := cps[k]
			k++
			if err := dec.Decode(p, &env); err != nil {
				return &segment.CorruptError{File: s.Name, Offset: off, Seq: prev, Reason: err.Error()}
			}
			if env.Stream != names[want.stream] || env.Version != want.version || env.Seq <= prev || !strings.HasPrefix(env.Stream, prefix) {
				return &segment.CorruptError{File: s.Name, Offset: off, Seq: prev, Reason: fmt.Sprintf("index points at %q version %d (seq %d), want %q version %d after seq %d",
					env.Stream, env.Version, env.Seq, names[want.stream], want.version, prev)}
			}
			if env.Seq < from {
				return nil
			}
			if env.Seq > pub.seq {
				return errStop
			}
			prev = env.Seq
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			return fn(&env)
		})
		if err == errStop {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}
