// Package replay computes "the state at a target" — latest, a seq, or a
// recorded time — by loading the newest usable snapshot at or before the
// target and folding only the events after it.
//
// It works in two steps, so a caller (or `evlogctl state --dry-run`) can
// see what will happen before it happens: Plan chooses the snapshot and the
// event range; Run executes the plan with a fold supplied by the caller.
//
// replay depends only on the small interfaces it defines — Source (an event
// log) and Snapshots (a snapshot store) — which *evlog.Log and
// *snapshot.Store satisfy, so another backend can serve them. The fold is
// pure: func(S, E) S over raw envelopes or typed events.
//
// Guarantees:
//   - The answer is the same with or without snapshots: a snapshot is used
//     only if its subject name and schema version match, it belongs to this
//     log, it does not claim events beyond the end of the log, and it fully
//     verifies (checksums, sizes); otherwise the next older one is tried,
//     down to a full replay from seq 1. A verified snapshot whose state
//     does not decode (Run) is replaced by a full replay from seq 1.
//     Every fallback is reported (in the plan and result, and through the
//     logger).
//   - Deletions: a snapshot is stale, and passed over, only if a deletion
//     after it removed events its fold could have included: a stream in
//     its subject's Scope (its stream; its categories; the whole log). A
//     source that cannot say which stream a deletion deleted (only
//     Deletions) makes every deletion count.
//   - Retention: a snapshot keeps the effect of the events it folded that
//     have expired since (Anchors). When a deletion makes such a snapshot
//     stale, folding again cannot reproduce its state: MakePlan fails
//     with ErrHistoryLost (a *HistoryLostError naming the snapshot, the
//     deletion and the first expired event) instead of returning a view
//     silently missing history; Options.NoSnapshot folds what is left.
//   - Retention after a snapshot: an event of the subject's scope after
//     the snapshot's seq that expired before it was folded (a projection
//     stopped or lagging, a stream's MaxCount shorter than its snapshot
//     interval) makes Run fail with ErrExpiredUnfolded (an
//     *ExpiredUnfoldedError naming the snapshot and the event) instead of
//     returning the snapshot's state without it; expired events of
//     streams outside the scope do not count.
//   - A read error during replay aborts it with that error; replay never
//     returns a silently shortened state.
//   - Memory is O(state): events are streamed.
package replay

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/snapshot"
)

// Source is the event log replay reads.
type Source interface {
	// LogID identifies the log; snapshots of another log are ignored.
	LogID() [16]byte
	// LastSeq returns the seq of the last event (0: empty).
	LastSeq() uint64
	// SeqAt returns the seq of the last event recorded at or before t.
	SeqAt(ctx context.Context, t time.Time) (uint64, error)
	// Range iterates the events with seq in [from, to] (nothing if to < from), in
	// seq order; an error ends the iteration.
	Range(ctx context.Context, from, to uint64) iter.Seq2[event.Envelope, error]
	// Stream iterates one stream's events from version fromVersion.
	Stream(ctx context.Context, stream string, fromVersion uint64) iter.Seq2[event.Envelope, error]
}

// BorrowingSource is a Source that can also iterate a seq range without
// copying each event's payload (*evlog.Log is one): RangeBorrowed yields
// what Range yields, except that each envelope's Data is valid only until
// the loop body returns. Run uses it for a Spec with NoCopy set.
type BorrowingSource interface {
	Source
	RangeBorrowed(ctx context.Context, from, to uint64) iter.Seq2[event.Envelope, error]
}

// Snapshots is the snapshot store replay reads (nil: no snapshots).
// *snapshot.Store satisfies it.
type Snapshots interface {
	// Candidates visits the snapshot files of name with seq <= maxSeq
	// (math.MaxUint64: all), newest first: those whose header reads and
	// those whose header cannot be read (Unreadable set), which MakePlan
	// reports as fallbacks. MakePlan stops at the first usable one, so an
	// implementation should read lazily.
	Candidates(name string, maxSeq uint64) iter.Seq2[snapshot.Candidate, error]
	// Load reads and fully verifies a snapshot, returning its state bytes.
	Load(ctx context.Context, m snapshot.Meta) ([]byte, error)
}

// SnapshotStore is a snapshot store that also saves and prunes: what an
// aggregate.Repository (aggregate.Snapshots) and a projection.Runner
// (projection.Checkpoints) need. *snapshot.Store satisfies it.
type SnapshotStore interface {
	Snapshots
	Saver
	// Prune removes the snapshots of name that p does not keep and
	// returns them.
	Prune(ctx context.Context, name string, p snapshot.PrunePolicy) ([]snapshot.Meta, error)
}

// Target is what state to compute: Latest, AtSeq or AtTime.
type Target struct {
	kind targetKind
	seq  uint64
	time time.Time
}

type targetKind int

const (
	targetLatest targetKind = iota
	targetSeq
	targetTime
)

// Latest targets the state after the last event.
func Latest() Target { return Target{} }

// AtSeq targets the state after the event with seq s (0: the initial state).
func AtSeq(s uint64) Target { return Target{kind: targetSeq, seq: s} }

// AtTime targets the state after every event recorded at or before t
// (inclusive).
func AtTime(t time.Time) Target { return Target{kind: targetTime, time: t} }

func (t Target) String() string {
	switch t.kind {
	case targetSeq:
		return fmt.Sprintf("seq %d", t.seq)
	case targetTime:
		return "time " + t.time.UTC().Format(time.RFC3339Nano)
	}
	return "latest"
}

// Scope says which events a replay folds, and so which deletions can
// make a snapshot of it stale (see ScopedDeletions).
type Scope struct {
	// Stream limits the replay to one stream (an aggregate instance); ""
	// folds the whole log.
	Stream string
	// Categories limits a whole-log replay (Stream "") to the events of
	// the streams of these categories (event.CategoryOf); the events of
	// other streams are covered (passed, like evlog's system events) but
	// not folded. nil folds every stream. A deletion of a stream outside
	// the scope leaves the subject's snapshots usable. Changing the
	// categories of a subject changes its fold: Save records the scope
	// (Digest) and MakePlan passes over snapshots of another
	// (ScopeMismatch); changing its SchemaVersion too is still clearer.
	Categories []string
}

// Includes reports whether the events of stream are in the scope: folded
// by a replay of it, so that their deletion can make its snapshots stale.
// System streams are in no scope.
func (s Scope) Includes(stream string) bool {
	switch {
	case event.IsSystemStream(stream):
		return false
	case s.Stream != "":
		return stream == s.Stream
	case s.Categories == nil:
		return true
	}
	cat, _, ok := event.CategoryOf(stream)
	return ok && slices.Contains(s.Categories, cat)
}

// Subject identifies the state being computed, for snapshot selection.
type Subject struct {
	// Name is the snapshot subject name (e.g. "stats", "cart/cart-42").
	Name string
	// SchemaVersion is the current version of the state's shape and fold
	// logic; snapshots of any other version are skipped.
	SchemaVersion uint64
	Scope
}

// ErrBeyondEnd is returned when a seq target lies beyond the end of the log.
var ErrBeyondEnd = errors.New("evlog/replay: target seq is beyond the end of the log")

// Fallback records a snapshot replay did not use, and why.
type Fallback struct {
	File   string `json:"file"`
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}
