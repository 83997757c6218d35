package evlogcli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// The rule every command that folds a state follows (state, snapshot and
// verify --replay, for stats and for an application's fold), so that
// they start from, save and compare exactly the snapshots the
// application's aggregate.Repository or projection.Runner would start
// from, and cannot drift apart again:
//
//   - replay.MakePlan's rules: a snapshot of another schema version, of
//     another scope (replay.ScopeMismatch: a projection's checkpoint
//     folded under other Categories, or one that records none while
//     the projection has Categories), of another log, beyond the end of the log, damaged, whose last event
//     is not where it says, or from before a deletion of a stream in the
//     subject's scope (replay.Scope: an aggregate's stream, a
//     projection's Categories, the whole log) is passed over; a deletion
//     outside the scope is not;
//   - for a projection, while an interrupted projection.Runner Rebuild's
//     marker is there (a snapshot of "projection-rebuild/" + NAME), none
//     of its checkpoints: they may be of the old fold, and the runner
//     rebuilds from the first event at its next Run;
//   - when a deletion makes a snapshot stale and events it folded have
//     expired since (replay.ErrHistoryLost), no state: a
//     *historyLostError saying what to do.
//
// planFold applies it to plan a state (state, snapshot), and
// comparableSnapshots to choose the snapshots a replay is compared with
// (verify --replay).

// planFold plans the state of subj at target under the rule above;
// marker is the subject of the projection's rebuild marker ("" for
// stats and aggregates). noSnapshot plans a full replay (state
// --no-snapshot), which needs no marker and cannot lose history.
func planFold(ctx context.Context, src replay.Source, store replay.Snapshots, subj replay.Subject, marker string, target replay.Target, noSnapshot bool) (*replay.Plan, error) {
	var pending *snapshot.Meta
	if marker != "" && !noSnapshot {
		var err error
		if pending, err = rebuildPending(store, marker); err != nil {
			return nil, err
		}
	}
	plan, err := replay.MakePlan(ctx, src, store, subj, target, replay.Options{NoSnapshot: noSnapshot || pending != nil})
	if hl, ok := errors.AsType[*replay.HistoryLostError](err); ok {
		return nil, &historyLostError{hl: hl}
	}
	if err != nil {
		return nil, err
	}
	if pending != nil {
		maxSeq := plan.ToSeq
		if plan.Target == replay.Latest() {
			maxSeq = math.MaxUint64
		}
		if plan.Fallbacks, err = passOverForRebuild(store, subj, *pending, maxSeq, plan.Fallbacks); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// comparableSnapshots returns, of metas (snapshots verified intact, of
// this log, not beyond its end), those of subj that a plan under the
// rule above may start from and that a replay of the events can re-fold,
// by seq: of subj's name, schema version and scope, not from before the newest
// deletion of a stream in its scope, not folding an event of its scope
// that has expired since (replay.Expirations: a plan keeps such a
// snapshot, and its effect, but the events no longer yield it), and none
// while the projection's rebuild marker is there. The snapshots of subj's
// name it leaves out are returned as skipped, with why (those of another
// schema version are not listed: they are of another fold, which no plan
// of subj reads).
func comparableSnapshots(ctx context.Context, src replay.Source, store replay.Snapshots, subj replay.Subject, marker string, metas []snapshot.Meta) (keep []snapshot.Meta, skipped []replay.Fallback, err error) {
	for _, m := range metas {
		if m.Name != subj.Name || m.SchemaVersion != subj.SchemaVersion {
			continue
		}
		reason, _, err := replay.ScopeMismatch(ctx, src, subj, m)
		if err != nil {
			return nil, nil, err
		}
		if reason != "" {
			skipped = append(skipped, replay.Fallback{File: m.File, Seq: m.Seq, Reason: reason})
			continue
		}
		keep = append(keep, m)
	}
	if len(keep) == 0 {
		return nil, skipped, nil
	}
	slices.SortFunc(keep, func(a, b snapshot.Meta) int { return cmp.Compare(a.Seq, b.Seq) })
	if marker != "" {
		pending, err := rebuildPending(store, marker)
		if err != nil {
			return nil, nil, err
		}
		if pending != nil {
			for _, m := range keep {
				skipped = append(skipped, replay.Fallback{File: m.File, Seq: m.Seq, Reason: rebuildReason(*pending)})
			}
			return nil, skipped, nil
		}
	}
	// A snapshot from before the newest deletion of a stream in its
	// scope folded events that read as gone since (plans pass over it);
	// a replay of the events now cannot re-fold its state. A deletion of
	// another stream leaves it comparable, as replay.MakePlan leaves it
	// usable.
	del, stream, err := replay.LastDeletionIn(ctx, src, subj.Scope)
	if err != nil {
		return nil, nil, err
	}
	// A snapshot that folded an event which has expired since (retention,
	// or a placeholder compact left of it) keeps its effect, as plans
	// keep using it (replay.Anchors); a replay of the events now cannot
	// re-fold it. Events in the snapshot's Unfolded ranges were never
	// folded into it: their expiry leaves it comparable (FirstFoldedExpired).
	x, _ := src.(replay.Expirations)
	var ferr error
	keep = slices.DeleteFunc(keep, func(m snapshot.Meta) bool {
		if x != nil && ferr == nil {
			expired, found, err := replay.FirstFoldedExpired(ctx, x, m.Seq, m.Unfolded, subj.Includes)
			if err != nil {
				ferr = err
				return false
			}
			if found {
				skipped = append(skipped, replay.Fallback{File: m.File, Seq: m.Seq,
					Reason: fmt.Sprintf("folded the event at seq %d, which has expired since (retention): it keeps its effect, which a replay no longer yields", expired)})
				return true
			}
		}
		if m.Seq >= del {
			return false
		}
		reason := fmt.Sprintf("folded the events up to seq %d, before the deletion at seq %d", m.Seq, del)
		if stream != "" {
			reason += fmt.Sprintf(" (of stream %q)", stream)
		}
		skipped = append(skipped, replay.Fallback{File: m.File, Seq: m.Seq, Reason: reason + ": it may hold data of deleted events, which a replay no longer yields"})
		return true
	})
	if ferr != nil {
		return nil, nil, ferr
	}
	return keep, skipped, nil
}

// rebuildPending returns the marker an interrupted projection.Runner
// Rebuild left (a snapshot of the subject marker, "projection-rebuild/"
// + NAME; nil: none). While it is there the runner trusts none of the
// projection's checkpoints (they may be of the old fold): it rebuilds
// from the first event at its next Run.
func rebuildPending(store replay.Snapshots, marker string) (*snapshot.Meta, error) {
	for c, err := range store.Candidates(marker, math.MaxUint64) {
		if err != nil {
			return nil, fmt.Errorf("looking for an interrupted rebuild (%s): %w", marker, err)
		}
		return &c.Meta, nil
	}
	return nil, nil
}

// passOverForRebuild appends the checkpoints of subj with seq at most
// maxSeq, passed over for the rebuild marker, to fallbacks.
func passOverForRebuild(store replay.Snapshots, subj replay.Subject, marker snapshot.Meta, maxSeq uint64, fallbacks []replay.Fallback) ([]replay.Fallback, error) {
	for c, err := range store.Candidates(subj.Name, maxSeq) {
		if err != nil {
			return nil, fmt.Errorf("listing the checkpoints of %s: %w", subj.Name, err)
		}
		fallbacks = append(fallbacks, replay.Fallback{File: c.Meta.File, Seq: c.Meta.Seq, Reason: rebuildReason(marker)})
	}
	return fallbacks, nil
}

func rebuildReason(marker snapshot.Meta) string {
	return fmt.Sprintf("an interrupted projection rebuild (marker %s) replaces the checkpoints of the old fold: its runner rebuilds at its next Run", marker.File)
}

// historyLostError is how the commands report replay.ErrHistoryLost: no
// state, since folding the events again would silently lose the effect
// of expired ones, with what the operator can do. It matches
// replay.ErrHistoryLost and *replay.HistoryLostError (errors.Is, As).
type historyLostError struct {
	hl *replay.HistoryLostError
}

func (e *historyLostError) Error() string {
	hl := e.hl
	del := fmt.Sprintf("seq %d", hl.DeletionSeq)
	if hl.DeletedStream != "" {
		del += fmt.Sprintf(" (stream %q)", hl.DeletedStream)
	}
	return fmt.Sprintf("history lost: snapshot %s of %s (seq %d) is stale since the deletion at %s, and the event at seq %d it folded has expired since; "+
		"folding the events again would silently lose that event's effect, so nothing is computed or saved "+
		"(state --no-snapshot prints the state of the events that are left, as the application's projection.Runner.Rebuild or aggregate.Repository.Rebuild would fold it; "+
		"to keep the expired events' effect, restore the log and its snapshots from a backup taken before seq %d expired)",
		hl.Snapshot.File, hl.Subject, hl.Snapshot.Seq, del, hl.ExpiredSeq, hl.ExpiredSeq)
}

// Unwrap returns the *replay.HistoryLostError.
func (e *historyLostError) Unwrap() error { return e.hl }

// passedOverError is snapshot's failure when the file it would write is
// already there but is a snapshot its plan passed over (File, for
// Reason): it is not replaced (a snapshot is never renamed over a file),
// so the state computed is not saved.
type passedOverError struct {
	File   string
	Reason string
}

func (e *passedOverError) Error() string {
	return fmt.Sprintf("snapshot %s, at the seq of the state computed, was passed over (%s): it is not replaced and the state is not saved "+
		"(a projection's runner replaces a checkpoint of another fold when it rebuilds, or at its next checkpoint when no event up to it has expired; snapshot succeeds once the log grows; `verify` reports a damaged snapshot, which you may then move away and snapshot again)",
		e.File, e.Reason)
}

// checkNotPassedOver returns a *passedOverError when file, the snapshot
// already at the seq of a state computed by plan, is one plan passed
// over.
func checkNotPassedOver(plan *replay.Plan, file string) error {
	if plan == nil {
		return nil
	}
	for _, fb := range plan.Fallbacks {
		if fb.File == file {
			return &passedOverError{File: file, Reason: fb.Reason}
		}
	}
	return nil
}
