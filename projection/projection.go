// Package projection derives read models (views) from the event stream.
//
// A Projection is a pure fold — no I/O, no context — from events to a
// view. Drive one or several over any iter.Seq2 of events with Compute and
// FeedAll: they stop at the first read error, so a damaged log never yields
// a silently shortened view, and several views are computed in one pass
// without modifying anything.
//
// A Runner keeps a projection up to date persistently: it starts from its
// checkpoint (the view snapshotted together with the seq it covers, in one
// atomic file), catches up, then follows live appends, checkpointing as it
// goes. A changed SchemaVersion (or Categories) makes it fold from the
// first event (or an older checkpoint of the new fold). Checkpoints of the
// old fold are kept for a rollback, pruned fold by fold (CheckpointFold);
// the one at the seq the new view reaches, which takes the file name of
// the new fold's checkpoint there, is replaced only on a log whose events
// cannot expire (no Retention): on a log with Retention it is kept, since
// an event it folded may expire later and it would then be the only
// record of that event's effect, and the new fold is checkpointed once
// the log grows (RunnerOptions.ReplaceOtherFoldDespiteRetention changes
// that, with its risk).
package projection

import (
	"iter"
)

// Projection is a pure fold from events of type E to a view S.
type Projection[S, E any] struct {
	// Name identifies the view; its checkpoints are stored under
	// "projection/" + Name.
	Name string
	// SchemaVersion is the version of the view's shape and of Apply;
	// change it and persisted views are rebuilt.
	SchemaVersion uint64
	// Categories limits the view to the events of the streams of these
	// categories (event.CategoryOf): a Runner folds only those (the
	// others are covered, not folded), and a deletion of a stream of
	// another category leaves its view and checkpoints as they are. nil:
	// every stream, so that any deletion folds the view again. Changing
	// it changes the fold: a Runner records the scope in its checkpoints
	// (replay.Scope.Digest; order and duplicates do not count) and
	// passes over those of other Categories, folding the new scope from
	// an older matching checkpoint or the first event (see
	// replay.ScopeMismatch, also for checkpoints of older evlogs, which
	// record none); changing SchemaVersion too is still clearer. A
	// checkpoint of the old Categories (or SchemaVersion) at the seq the
	// new view reaches is replaced by the new one only when no event up
	// to it has expired and none can expire later (the log records no
	// Retention; see Runner.Run and docs/SNAPSHOT_FORMAT.md): on a log
	// with Retention it is kept, so that a rollback of the fold resumes
	// from it with the effect of events expired since. (Compute and
	// FeedAll fold what they are given.)
	Categories []string
	// Init returns the empty view (nil: zero S).
	Init func() S
	// Apply returns the view after one event. Pure and deterministic; it
	// may modify and return its input.
	Apply func(S, E) S
}

// New returns the empty view.
func (p *Projection[S, E]) New() S {
	var s S
	if p.Init != nil {
		s = p.Init()
	}
	return s
}

// Compute computes the view from events, stopping at the first error.
func Compute[S, E any](p Projection[S, E], events iter.Seq2[E, error]) (S, error) {
	s := p.New()
	for e, err := range events {
		if err != nil {
			return s, err
		}
		s = p.Apply(s, e)
	}
	return s, nil
}

// Consumer is a projection being computed, consuming events one at a time
// (View is one): FeedAll feeds several at once.
type Consumer[E any] interface {
	Add(E)
}

// View is a running Projection: a Consumer holding its current state.
type View[S, E any] struct {
	p     Projection[S, E]
	state S
	n     int
}

// Start returns a View of p at its empty state.
func Start[S, E any](p Projection[S, E]) *View[S, E] { return &View[S, E]{p: p, state: p.New()} }

// Add folds one event into the view.
func (v *View[S, E]) Add(e E) { v.state = v.p.Apply(v.state, e); v.n++ }

// State returns the view's current state.
func (v *View[S, E]) State() S { return v.state }

// Events returns the number of events folded in.
func (v *View[S, E]) Events() int { return v.n }

// FeedAll feeds every event to every consumer, in one pass, stopping at the
// first error (returned).
func FeedAll[E any](events iter.Seq2[E, error], consumers ...Consumer[E]) error {
	for e, err := range events {
		if err != nil {
			return err
		}
		for _, c := range consumers {
			c.Add(e)
		}
	}
	return nil
}

// Map adapts an event iterator (e.g. raw envelopes to typed events): a
// conversion error ends the iteration with that error.
func Map[A, B any](events iter.Seq2[A, error], f func(A) (B, error)) iter.Seq2[B, error] {
	return func(yield func(B, error) bool) {
		for a, err := range events {
			var b B
			if err == nil {
				b, err = f(a)
			}
			if !yield(b, err) || err != nil {
				return
			}
		}
	}
}
