package evlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strings"

	"github.com/evlog/evlog/segment"
)

// Filter selects events for EventsFiltered, SubscribeFiltered and durable
// subscriptions. An event matches when its stream starts with one of
// StreamPrefixes or belongs to one of Categories (when either is set), and
// its type is one of Types (when set). The zero Filter matches every event.
//
// Reading cost: a filter with stream prefixes or categories reads, per
// sealed segment, the footer's stream blocks (names and entries of every
// stream of the segment, no events), then the postings and frames of the
// matching streams only; a segment holding no matching stream costs its
// blocks alone. (When a segment's blocks are as large as its records —
// about one event per stream — it is scanned instead.) The segment format
// has no type index, so a filter with only Types reads every frame, but
// hands over only the matching events.
type Filter struct {
	// Types: an event matches only if its type is one of these (none: any
	// type).
	Types []string
	// StreamPrefixes: an event matches only if its stream name starts with
	// one of these, or is in one of Categories (neither set: any stream).
	StreamPrefixes []string
	// Categories, after KurrentDB's convention: a stream's category is its
	// name up to its first '-', so category "cart" is the stream prefix
	// "cart-" ("cart-42", "cart-42-x"; not "cart" or "cartography-1"). A
	// category must be non-empty and hold no '-'.
	Categories []string
}

// IsZero reports whether f matches every event.
func (f Filter) IsZero() bool {
	return len(f.Types) == 0 && len(f.StreamPrefixes) == 0 && len(f.Categories) == 0
}

// Validate reports whether f is usable: no empty category, type or
// prefix, and no category holding '-'.
func (f Filter) Validate() error {
	var errs []error
	for _, c := range f.Categories {
		if c == "" || strings.Contains(c, "-") {
			errs = append(errs, fmt.Errorf("category %q: must be non-empty and hold no '-' (a category is a stream name's part before its first '-'; use StreamPrefixes for other prefixes)", c))
		}
	}
	for _, p := range f.StreamPrefixes {
		if p == "" {
			errs = append(errs, errors.New("empty stream prefix: it would match every stream; leave StreamPrefixes empty instead"))
		}
	}
	for _, t := range f.Types {
		if t == "" {
			errs = append(errs, errors.New("empty event type"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidFilter, err)
	}
	return nil
}

// Match reports whether e matches f.
func (f Filter) Match(e *Envelope) bool {
	return f.compile().match(e)
}

// prefixes returns the stream prefixes f selects (categories included),
// deduplicated; nil when f selects every stream.
func (f Filter) prefixes() []string {
	if len(f.StreamPrefixes) == 0 && len(f.Categories) == 0 {
		return nil
	}
	ps := slices.Clone(f.StreamPrefixes)
	for _, c := range f.Categories {
		ps = append(ps, c+"-")
	}
	slices.Sort(ps)
	return slices.Compact(ps)
}

// matcher is a compiled Filter.
type matcher struct {
	prefixes []string
	types    map[string]bool // nil: any type
}

func (f Filter) compile() *matcher {
	m := &matcher{prefixes: f.prefixes()}
	if len(f.Types) > 0 {
		m.types = make(map[string]bool, len(f.Types))
		for _, t := range f.Types {
			m.types[t] = true
		}
	}
	return m
}

func (m *matcher) matchStream(s string) bool {
	if m.prefixes == nil {
		return true
	}
	for _, p := range m.prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func (m *matcher) match(e *Envelope) bool {
	return (m.types == nil || m.types[e.Type]) && m.matchStream(e.Stream)
}

// commonPrefix is the prefix every selected stream starts with ("" if
// none), for segment.EachStream.
func (m *matcher) commonPrefix() string {
	if len(m.prefixes) == 1 {
		return m.prefixes[0]
	}
	return ""
}

// EventsFiltered is Events limited to the events matching f: the matching
// events with seq from (0 or 1: the beginning) on, through the last event
// visible when the iteration starts, in seq order, each once — exactly
// what filtering Events would yield. Sealed segments without a matching
// stream are skipped (see Filter for the cost). An invalid f yields only an
// error matching ErrInvalidFilter. Envelopes are the caller's, as with
// Events.
func (l *Log) EventsFiltered(ctx context.Context, from uint64, f Filter) iter.Seq2[Envelope, error] {
	if err := f.Validate(); err != nil {
		return func(yield func(Envelope, error) bool) { yield(Envelope{}, err) }
	}
	m := f.compile()
	return iterate(func(fn func(*Envelope) error) error { return l.scanFiltered(ctx, from, 0, m, fn) }, copier)
}

// scanFiltered is scan limited to the events m matches.
func (l *Log) scanFiltered(ctx context.Context, from, to uint64, m *matcher, fn func(e *Envelope) error) error {
	if m.prefixes == nil {
		if m.types == nil {
			return l.scan(ctx, from, to, fn)
		}
		return l.scan(ctx, from, to, func(e *Envelope) error {
			if !m.match(e) {
				return nil
			}
			return fn(e)
		})
	}
	return l.inView(ctx, func(v *view, pub published) error { return l.scanFilteredIn(ctx, v, pub, from, to, m, fn) })
}

// scanFilteredIn is scanFiltered (for a matcher with prefixes) over the
// view v (referenced by the caller) as pub publishes it.
func (l *Log) scanFilteredIn(ctx context.Context, v *view, pub published, from, to uint64, m *matcher, fn func(e *Envelope) error) error {
	from, to, ok := clampRange(pub, from, to)
	if !ok {
		return nil
	}
	fn, err := l.hideGone(ctx, v, pub, fn) // deletion.go
	if err != nil {
		return err
	}
	var (
		er    segment.EventReader
		dec   segment.Decoder
		env   Envelope
		posts []segment.Posting
		tmp   []segment.Posting
		n     int
	)
	for s := range segmentsIn(v, from, to) {
		last := pub.seq
		posts = posts[:0]
		if s.Sealed {
			last = s.Trailer.LastSeq
			if last < from {
				continue
			}
			sum, err := s.Summary()
			if err != nil {
				return err
			}
			if sum.PrefixBlockBytes(m.commonPrefix()) >= s.Trailer.RecordsEnd-segment.HeaderSize {
				// About one event per stream: reading the blocks costs as
				// much as scanning the records.
				err := l.scan(ctx, max(from, s.FirstSeq()), min(to, last), func(e *Envelope) error {
					if !m.match(e) {
						return nil
					}
					return fn(e)
				})
				if err != nil {
					return err
				}
				continue
			}
			err = s.EachStream(m.commonPrefix(), func(name string, e segment.StreamEntry) error {
				if !m.matchStream(name) {
					return nil
				}
				var err error
				if tmp, err = s.Postings(e, tmp); err != nil {
					return err
				}
				posts = append(posts, tmp...)
				return nil
			})
			if err != nil {
				return err
			}
		} else {
			l.mu.RLock()
			err := v.active.EachStream(m.commonPrefix(), func(name string, sp segment.StreamPostings) {
				if !m.matchStream(name) {
					return
				}
				// Only what was published when the iteration started.
				k := sort.Search(len(sp.Posts), func(i int) bool { return sp.Posts[i].Off >= pub.end })
				posts = append(posts, sp.Posts[:k]...)
			})
			l.mu.RUnlock()
			if err != nil {
				return err
			}
		}
		if len(posts) == 0 {
			continue
		}
		sparse, err := l.sparseOf(v, s)
		if err != nil {
			return err
		}
		lo := segment.SeekSeq(sparse, from)
		slices.SortFunc(posts, func(a, b segment.Posting) int { return cmp.Compare(a.Off, b.Off) })
		k := sort.Search(len(posts), func(i int) bool { return posts[i].Off >= lo })
		ra, _, err := s.Records()
		if err != nil {
			return err
		}
		prev := uint64(0)
		err = er.Read(ra, s.Name, posts[k:], func(off int64, p []byte) error {
			if err := dec.Decode(p, &env); err != nil {
				return corruptEvent(s.Name, off, prev, err)
			}
			if env.Seq <= prev || env.Seq < s.FirstSeq() || env.Seq > last || !m.matchStream(env.Stream) {
				return &segment.CorruptError{File: s.Name, Offset: off, Seq: prev, Reason: fmt.Sprintf("index points at %q seq %d (after seq %d, in a segment of seqs %d..%d)", env.Stream, env.Seq, prev, s.FirstSeq(), last)}
			}
			prev = env.Seq
			if env.Seq < from {
				return nil
			}
			if env.Seq > to {
				return errPastTo
			}
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if m.types != nil && !m.types[env.Type] {
				return nil
			}
			return fn(&env)
		})
		if err == errPastTo {
			return nil
		}
		if err != nil {
			return err // errStop included: the consumer stopped
		}
	}
	return nil
}

// errPastTo ends a filtered scan at its upper bound.
var errPastTo = errors.New("past the end of the range")

// ErrInvalidFilter is matched by the error of a read or subscription given
// a Filter that does not validate.
var ErrInvalidFilter = errors.New("evlog: invalid filter")
