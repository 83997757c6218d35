package replay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/snapshot"
)

// Plan is what a replay will do: start from Snapshot (nil: from the
// initial state) and apply the events with seq in [FromSeq, ToSeq] (of
// Stream, when set). An empty range has FromSeq > ToSeq.
type Plan struct {
	Subject  Subject
	Target   Target
	Snapshot *snapshot.Meta
	// FromSeq and ToSeq bound the events applied after the snapshot.
	FromSeq, ToSeq uint64
	// FromVersion is, for a stream scope, the first stream version applied.
	FromVersion uint64
	// Fallbacks lists the newer snapshots that were passed over.
	Fallbacks []Fallback

	state []byte       // the verified snapshot state, loaded while planning
	log   *slog.Logger // MakePlan's Options.Logger; nil discards
}

// Options tune planning.
type Options struct {
	// NoSnapshot forces a full replay (for checking and timing).
	NoSnapshot bool
	// Logger receives a warning per fallback; nil discards.
	Logger *slog.Logger
}

// MakePlan resolves the target to a seq and picks the newest snapshot of
// the subject at or before it that is usable: same schema version, same
// scope (ScopeMismatch), same log, not beyond the end of the log, and (it
// is loaded and checked here) intact. Anything else is recorded as a fallback and an older snapshot is
// tried, down to none. Beside a writer in another process two states are
// no damage and are passed over without a fallback: a snapshot removed
// since it was listed (a prune), and one beyond the end of a src that
// lags the log (a read-only view, with a Refresh method) once a Refresh
// shows the log reaching it (saved after the view was taken; beyond the
// target anyway). A seq target beyond the end of such a view is
// ErrBeyondEnd only if the log does not reach it after a Refresh either
// (the view then includes what the writer appended since).
//
// A snapshot from before a deletion of a stream in the subject's scope
// (LastDeletionIn: ScopedDeletions, or conservatively any deletion) may
// hold data of the deleted events and is passed over (a fallback); a
// deletion of another stream leaves it usable. When a deletion passes
// over a snapshot and src (Expirations) reports that an event of the
// scope it folded reads as gone by retention since, folding again would
// silently lose that event's effect: MakePlan then fails with a
// *HistoryLostError (ErrHistoryLost) naming the snapshot, the deletion
// and the event, and the caller chooses (Options.NoSnapshot folds the
// events that are left).
func MakePlan(ctx context.Context, src Source, snaps Snapshots, subj Subject, target Target, opts Options) (*Plan, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	last := src.LastSeq()
	p := &Plan{Subject: subj, Target: target, FromSeq: 1, FromVersion: 1, log: opts.Logger}
	refreshed := false // src was refreshed (at most once per plan: reaches)
	switch target.kind {
	case targetLatest:
		p.ToSeq = last
	case targetSeq:
		if target.seq > last && reaches(src, target.seq, &refreshed) {
			last = src.LastSeq() // a lagging view, refreshed: the writer is there
		}
		if target.seq > last {
			return nil, fmt.Errorf("%w: seq %d, the log ends at %d", ErrBeyondEnd, target.seq, last)
		}
		p.ToSeq = target.seq
	case targetTime:
		s, err := src.SeqAt(ctx, target.time)
		if err != nil {
			return nil, fmt.Errorf("evlog/replay: resolving %s: %w", target, err)
		}
		p.ToSeq = s
	}
	if snaps == nil || opts.NoSnapshot || p.ToSeq == 0 {
		return p, nil
	}
	// For the latest state every snapshot is a candidate, so that one
	// claiming a seq beyond the end of the log is seen and reported.
	maxSeq := p.ToSeq
	if target.kind == targetLatest {
		maxSeq = math.MaxUint64
	}
	logID := src.LogID()
	deleted, delStream, err := LastDeletionIn(ctx, src, subj.Scope)
	if err != nil {
		return nil, err
	}
	var stale *snapshot.Meta // the newest snapshot passed over for a deletion
	for e, err := range snaps.Candidates(subj.Name, maxSeq) {
		if err != nil {
			return nil, fmt.Errorf("evlog/replay: listing snapshots of %s: %w", subj.Name, err)
		}
		m := e.Meta
		reason, otherScope := "", ""
		if e.Unreadable == "" && m.SchemaVersion == subj.SchemaVersion && m.LogID == logID {
			// Before the deletion check: a snapshot of another scope
			// holds nothing of this subject's history.
			var trusted bool
			if otherScope, trusted, err = ScopeMismatch(ctx, src, subj, m); err != nil {
				return nil, err
			}
			if trusted {
				opts.Logger.Warn("evlog/replay: using a snapshot that records no scope, as events it folded have expired (folding again would lose them); if its Categories were not the current ones, Rebuild",
					"subject", subj.Name, "file", m.File, "seq", m.Seq)
			}
		}
		switch {
		case e.Unreadable != "":
			reason = "unreadable: " + e.Unreadable
		case m.SchemaVersion != subj.SchemaVersion:
			reason = fmt.Sprintf("schema version %d, the current one is %d", m.SchemaVersion, subj.SchemaVersion)
		case m.LogID != logID:
			reason = fmt.Sprintf("belongs to another log (%x)", m.LogID[:])
		case otherScope != "":
			reason = otherScope
		case m.Seq > last && reaches(src, m.Seq, &refreshed):
			// Saved after src's view was taken. The view is refreshed:
			// older snapshots are checked against its deletions.
			if deleted, delStream, err = LastDeletionIn(ctx, src, subj.Scope); err != nil {
				return nil, err
			}
			continue
		case m.Seq > last:
			reason = fmt.Sprintf("claims seq %d, beyond the end of the log (%d)", m.Seq, last)
		case m.Seq < deleted:
			reason = fmt.Sprintf("folded the events up to seq %d, before the deletion at seq %d%s: it may hold data of deleted events", m.Seq, deleted, ofStream(delStream))
			if stale == nil {
				stale = &m
			}
		}
		if reason == "" {
			state, err := snaps.Load(ctx, m)
			switch {
			case err == nil:
				reason = p.checkAnchor(ctx, src, m)
				if reason == "" {
					p.Snapshot, p.state = &m, state
					p.FromSeq = m.Seq + 1
					return p, nil
				}
			case ctx.Err() != nil:
				return nil, ctx.Err()
			case errors.Is(err, fs.ErrNotExist):
				continue // removed since it was listed (pruned)
			default:
				reason = "unreadable: " + err.Error()
			}
		}
		p.fallback(opts.Logger, m, reason)
	}
	if stale != nil {
		// Every older snapshot is from before the deletion too: the
		// plan folds from the first event, which must still hold
		// everything the stale snapshot folded.
		if err := checkRefold(ctx, src, subj, *stale, deleted, delStream); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func ofStream(stream string) string {
	if stream == "" {
		return ""
	}
	return fmt.Sprintf(" (of stream %q)", stream)
}

// checkRefold returns a *HistoryLostError when an event of the subject's
// scope up to the stale snapshot's seq that the snapshot may have folded
// (outside its Unfolded ranges) reads as gone other than by a deletion
// (src is Expirations; a src that cannot tell is trusted).
func checkRefold(ctx context.Context, src Source, subj Subject, stale snapshot.Meta, deleted uint64, delStream string) error {
	x, ok := src.(Expirations)
	if !ok {
		return nil
	}
	seq, found, err := FirstFoldedExpired(ctx, x, stale.Seq, stale.Unfolded, subj.Includes)
	if err != nil {
		return fmt.Errorf("evlog/replay: %s: reading which events up to seq %d expired: %w", subj.Name, stale.Seq, err)
	}
	if !found {
		return nil
	}
	return &HistoryLostError{Subject: subj.Name, Snapshot: stale, DeletionSeq: deleted, DeletedStream: delStream, ExpiredSeq: seq}
}

// Anchors is implemented by a Source whose events can read as gone while
// a snapshot that folded them stays valid: events expired by retention
// (*evlog.Log). AnchorEvent returns the event at seq as recorded, gone or
// not, without its payload (Data, Meta and ID), and its anchor
// (snapshot.AnchorOf the whole event; 0 when the source no longer holds
// all of it, as for a placeholder of a redacted event); found is false
// when there is none. MakePlan checks a snapshot's last event with it
// (time, anchor, stream), so that a snapshot of events since expired
// still anchors and keeps their effect. Events deleted after a
// snapshot's seq are caught before, by ScopedDeletions (or Deletions).
type Anchors interface {
	AnchorEvent(ctx context.Context, seq uint64) (e event.Envelope, anchor uint64, found bool, err error)
}

// refresher is a Source that may lag the log it reads and can catch up:
// a log opened read-only beside a writer in another process.
type refresher interface{ Refresh() error }

// reaches reports whether the log src reads reaches seq once src is
// refreshed (at most once per plan: *refreshed), when src is a refresher.
func reaches(src Source, seq uint64, refreshed *bool) bool {
	r, ok := src.(refresher)
	if !ok {
		return false
	}
	if !*refreshed {
		if r.Refresh() != nil {
			return false
		}
		*refreshed = true
	}
	return src.LastSeq() >= seq
}

// checkAnchor checks that the snapshot's last event is where the snapshot
// says — its time, and its anchor (snapshot.AnchorOf: the whole event)
// when the snapshot records one (format version 2; a version 1 snapshot
// is checked by time only, so one taken on another history whose event
// at the same seq has the same time is not told apart); for a stream
// scope, that it is of the stream — and sets FromVersion. The anchor is
// compared only while the log holds all of the event: once Compact has
// replaced it by a placeholder (deleted or expired, see Anchors), its
// time and stream are all there is to go by.
func (p *Plan) checkAnchor(ctx context.Context, src Source, m snapshot.Meta) string {
	var ev *event.Envelope
	var anchor uint64 // AnchorOf the log's event at m.Seq (0: unknown)
	if a, ok := src.(Anchors); ok {
		e, an, found, err := a.AnchorEvent(ctx, m.Seq)
		if err != nil {
			return "cannot read its last event: " + err.Error()
		}
		if found {
			ev, anchor = &e, an
		}
	} else {
		for e, err := range src.Range(ctx, m.Seq, m.Seq) {
			if err != nil {
				return "cannot read its last event: " + err.Error()
			}
			ev, anchor = &e, snapshot.AnchorOf(e)
		}
	}
	switch {
	case ev == nil:
		return fmt.Sprintf("its last event (seq %d) is not in the log", m.Seq)
	case !ev.Time.Equal(m.Time):
		return fmt.Sprintf("its last event (seq %d) was recorded at %s, the snapshot says %s", m.Seq, ev.Time.Format(time.RFC3339Nano), m.Time.UTC().Format(time.RFC3339Nano))
	case m.Anchor != 0 && anchor != 0 && anchor != m.Anchor:
		// A version 1 snapshot (Anchor 0) has only the time to go by.
		return fmt.Sprintf("its last event (seq %d) is not the event it was folded up to (anchor mismatch): the log's history after an older point differs from the snapshot's (restored from an older copy and appended to again?)", m.Seq)
	case p.Subject.Stream != "" && ev.Stream != p.Subject.Stream:
		return fmt.Sprintf("its last event (seq %d) belongs to stream %q, not %q", m.Seq, ev.Stream, p.Subject.Stream)
	}
	if p.Subject.Stream != "" {
		p.FromVersion = ev.Version + 1
	}
	return ""
}

// withoutSnapshot returns a copy of p that starts from the initial state
// instead of its snapshot, which it reports as a fallback for reason.
func (p *Plan) withoutSnapshot(reason string) *Plan {
	q := *p
	q.Fallbacks = slices.Clone(p.Fallbacks)
	q.Snapshot, q.state, q.FromSeq, q.FromVersion = nil, nil, 1, 1
	log := p.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q.fallback(log, *p.Snapshot, reason)
	return &q
}

func (p *Plan) fallback(log *slog.Logger, m snapshot.Meta, reason string) {
	p.Fallbacks = append(p.Fallbacks, Fallback{File: m.File, Seq: m.Seq, Reason: reason})
	log.Warn("evlog/replay: skipping a snapshot", "subject", p.Subject.Name, "file", m.File, "seq", m.Seq, "reason", reason)
}

// Events returns how many events the plan applies at most (for a stream
// scope, the seq span they lie in).
func (p *Plan) Events() uint64 {
	if p.FromSeq > p.ToSeq {
		return 0
	}
	return p.ToSeq - p.FromSeq + 1
}

// Deletions is implemented by a Source whose events can read as gone after
// they were folded (*evlog.Log: DeleteStream, TruncateStream,
// TombstoneStream). LastDeletionSeq returns the seq of the newest deletion
// (0: none), whatever stream it deleted. For a Source that is not
// ScopedDeletions, a snapshot or checkpoint of the events up to a seq
// below it may hold data of events deleted since, so MakePlan passes over
// it (a fallback naming the deletion) and the state is folded again from
// the events, which no longer yield the deleted ones.
type Deletions interface {
	LastDeletionSeq(ctx context.Context) (uint64, error)
}

// ScopedDeletions is implemented by a Source that can say which stream
// each of its deletions deleted (*evlog.Log). LastDeletionIn returns the
// seq of the newest deletion marker of a stream for which in returns
// true (0: none) and that stream; a marker the source cannot attribute to
// one stream (a kind it does not know) counts for every in, with stream
// "". MakePlan asks it with the subject's Scope.Includes: a snapshot is
// passed over only for a deletion after it of a stream in its scope; a
// deletion of another stream removed no event it folded.
type ScopedDeletions interface {
	LastDeletionIn(ctx context.Context, in func(stream string) bool) (seq uint64, stream string, err error)
}

// Expirations is implemented by a Source whose events can read as gone
// without a deletion (*evlog.Log: events expired by retention, and
// placeholders Compact left of them). FirstExpired returns the seq of the
// first event with seq in [from, to] of a stream for which in returns true
// that reads as gone other than by a deletion marker (found false: none).
// Only a snapshot that folded such an event holds its effect: MakePlan
// asks it before folding again in place of a snapshot a deletion made
// stale (see HistoryLostError).
type Expirations interface {
	FirstExpired(ctx context.Context, from, to uint64, in func(stream string) bool) (seq uint64, found bool, err error)
}

// FirstFoldedExpired returns the first event with seq in [1, to] of a
// stream for which in returns true that reads as gone other than by a
// deletion (x.FirstExpired) outside the ranges unfolded (a state's
// snapshot.Meta.Unfolded, or Result.Unfolded: no event there was folded
// into it): an event the state may have folded whose effect folding again
// would lose. With no ranges (not recorded) every expired event up to to
// counts, the safe side.
func FirstFoldedExpired(ctx context.Context, x Expirations, to uint64, unfolded snapshot.SeqRanges, in func(stream string) bool) (seq uint64, found bool, err error) {
	from := uint64(1)
	for r := range unfolded.All() {
		if r.From > to {
			break
		}
		if r.From > from {
			if seq, found, err = x.FirstExpired(ctx, from, r.From-1, in); err != nil || found {
				return seq, found, err
			}
		}
		from = max(from, r.To+1)
	}
	if from > to {
		return 0, false, nil
	}
	return x.FirstExpired(ctx, from, to, in)
}

// LastDeletionIn returns the seq of the newest deletion in src that can
// have removed events of scope (0: none) and the stream it deleted (""
// when unknown): by ScopedDeletions when src is one; else, conservatively,
// the newest deletion of any stream (Deletions); else 0. A state of scope
// folded up to a seq below it may hold data of deleted events.
func LastDeletionIn(ctx context.Context, src Source, scope Scope) (seq uint64, stream string, err error) {
	switch d := src.(type) {
	case ScopedDeletions:
		seq, stream, err = d.LastDeletionIn(ctx, scope.Includes)
	case Deletions:
		seq, err = d.LastDeletionSeq(ctx)
	}
	if err != nil {
		return 0, "", fmt.Errorf("evlog/replay: reading the log's deletions: %w", err)
	}
	return seq, stream, nil
}

// ErrHistoryLost is matched by the error of MakePlan (a
// *HistoryLostError) when a deletion made the subject's snapshots stale
// and events its newest stale snapshot folded have expired since: folding
// again from the events, as a stale snapshot calls for, would silently
// lose their effect, and using the snapshot would keep data of the
// deleted events. The caller chooses: fold without the expired events
// (Options.NoSnapshot; projection.Runner.Rebuild;
// aggregate.Repository.Rebuild), or restore the log and
// its snapshots from a backup taken before the events expired.
var ErrHistoryLost = errors.New("evlog/replay: a deletion made the snapshot stale, and events it folded have expired since")

// HistoryLostError names the stale snapshot, the deletion and the first
// expired event of an ErrHistoryLost.
type HistoryLostError struct {
	Subject string
	// Snapshot is the newest snapshot passed over for the deletion; for
	// a state held in memory (a projection Runner's view, which may have
	// folded events after its newest checkpoint, or has none), its Name,
	// Seq and Time, and File "".
	Snapshot snapshot.Meta
	// DeletionSeq is the seq of the deletion marker, DeletedStream the
	// stream it deleted ("" when the source cannot say).
	DeletionSeq   uint64
	DeletedStream string
	// ExpiredSeq is the seq of the first event the snapshot folded that
	// reads as gone by retention (or was compacted away).
	ExpiredSeq uint64
}

func (e *HistoryLostError) Error() string {
	state := fmt.Sprintf("snapshot %s (seq %d)", e.Snapshot.File, e.Snapshot.Seq)
	if e.Snapshot.File == "" {
		state = fmt.Sprintf("the view held in memory (seq %d)", e.Snapshot.Seq)
	}
	return fmt.Sprintf("%v: %s: %s may hold data deleted at seq %d%s, and the event at seq %d it folded has expired since: "+
		"folding the events again would lose it; fold without the expired events (replay.Options.NoSnapshot, projection.Runner.Rebuild, aggregate.Repository.Rebuild) or restore the log from a backup taken before it expired",
		ErrHistoryLost, e.Subject, state, e.DeletionSeq, ofStream(e.DeletedStream), e.ExpiredSeq)
}

// Unwrap returns ErrHistoryLost.
func (e *HistoryLostError) Unwrap() error { return ErrHistoryLost }

// ErrExpiredUnfolded is matched by the error of Run (an
// *ExpiredUnfoldedError) when the state starts from a snapshot and an
// event of the subject's scope after the snapshot's seq reads as gone by
// retention (Expirations): it expired before it was folded (a projection
// stopped or lagging while retention removed it; a snapshot interval
// longer than a stream's MaxCount). Folding on would return a state with
// the snapshot's history and without that event: a view silently missing
// events. Events of streams outside the scope, and events deleted by a
// marker, do not count. The caller chooses: fold the events that are left
// from the first one (Options.NoSnapshot; projection.Runner.Rebuild;
// aggregate.Repository.Rebuild), or restore the log and its snapshots
// from a backup taken before the events expired; and bound retention (or
// the projection's Categories) so that events do not expire before they
// are folded.
var ErrExpiredUnfolded = errors.New("evlog/replay: an event after the state's seq expired before it was folded")

// ExpiredUnfoldedError names the state and the first event of an
// ErrExpiredUnfolded.
type ExpiredUnfoldedError struct {
	Subject string
	// Snapshot is the snapshot the state started from; nil for a state
	// held in memory (a projection Runner's view).
	Snapshot *snapshot.Meta
	// Seq is the seq of the state: the last event folded into it.
	Seq uint64
	// ExpiredSeq is the seq of the first event of the scope after Seq
	// that reads as gone other than by a deletion marker.
	ExpiredSeq uint64
}

func (e *ExpiredUnfoldedError) Error() string {
	state := fmt.Sprintf("the view held in memory at seq %d", e.Seq)
	if e.Snapshot != nil {
		state = fmt.Sprintf("snapshot %s (seq %d)", e.Snapshot.File, e.Snapshot.Seq)
	}
	return fmt.Sprintf("%v: %s: %s, and the event at seq %d of its scope expired (retention) before it was folded: "+
		"folding on would silently miss it; fold the events that are left from the first one (replay.Options.NoSnapshot, projection.Runner.Rebuild, aggregate.Repository.Rebuild) "+
		"or restore the log from a backup taken before it expired, and bound retention so that events are folded before they expire",
		ErrExpiredUnfolded, e.Subject, state, e.ExpiredSeq)
}

// Unwrap returns ErrExpiredUnfolded.
func (e *ExpiredUnfoldedError) Unwrap() error { return ErrExpiredUnfolded }

// checkUnfolded returns an *ExpiredUnfoldedError when an event of a
// stream for which in returns true, with seq in [from, to], reads as gone
// other than by a deletion (src is Expirations; one that cannot tell is
// trusted): the events of a gap in what a replay from a snapshot read.
func checkUnfolded(ctx context.Context, src Source, p *Plan, from, to uint64, in func(string) bool) error {
	x, ok := src.(Expirations)
	if !ok || from > to {
		return nil
	}
	seq, found, err := x.FirstExpired(ctx, from, to, in)
	if err != nil {
		return fmt.Errorf("evlog/replay: %s: reading which events in seq %d..%d expired: %w", p.Subject.Name, from, to, err)
	}
	if !found {
		return nil
	}
	return &ExpiredUnfoldedError{Subject: p.Subject.Name, Snapshot: p.Snapshot, Seq: p.Snapshot.Seq, ExpiredSeq: seq}
}
