package projection

import (
	"context"
	"fmt"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// systemEvent handles an event of one of evlog's system streams met while
// following the log: it is not folded, but the view covers it. A
// deletion marker (event.DeletionsStream) of a stream in the view's scope
// (Projection.Categories; replay.LastDeletionIn: a log that cannot say
// which stream a deletion deleted counts every one) folds the view again
// from the events up to it, which no longer yield the deleted ones
// (checkpoints from before it are passed over: see
// replay.ScopedDeletions), so the view never keeps serving deleted data;
// the next checkpoint saves the rebuilt view. Folding again fails with
// replay.ErrHistoryLost when events the view folded have expired since
// (retention): Run returns it, and the view is no longer served (see
// Runner.View) until Rebuild.
func (r *Runner[S, E]) systemEvent(ctx context.Context, env event.Envelope) error {
	if env.Stream == event.DeletionsStream {
		r.mu.RLock()
		seq := r.seq
		r.mu.RUnlock()
		last, stream, err := replay.LastDeletionIn(ctx, r.src, r.subject().Scope)
		if err != nil {
			return fmt.Errorf("evlog/projection: %s: after the deletion at seq %d: %w", r.p.Name, env.Seq, err)
		}
		if last > seq {
			if err := r.checkRefold(ctx, env, stream); err != nil {
				return err
			}
			return r.refold(ctx, env)
		}
	}
	r.cover(env)
	return nil
}

// checkRefold returns a *replay.HistoryLostError when an event of the
// view's scope up to the view's seq reads as expired (r.src is
// replay.Expirations): the view held in memory may have folded it (after
// its newest checkpoint, or with no checkpoint store at all), and folding
// again from a checkpoint or the first event would silently lose its
// effect. It is the rule replay.MakePlan applies to a checkpoint a
// deletion made stale, applied to the view itself: events in the view's
// Unfolded ranges (replay.Result.Unfolded of the fold from the first
// event, or of the checkpoint it started from: gone before the view was
// folded) do not count; every other expired event up to the view's seq
// does, the safe side.
func (r *Runner[S, E]) checkRefold(ctx context.Context, env event.Envelope, stream string) error {
	x, ok := r.src.(replay.Expirations)
	if !ok {
		return nil
	}
	r.mu.RLock()
	seq, at, unfolded := r.seq, r.time, r.unfolded
	r.mu.RUnlock()
	subj := r.subject()
	exp, found, err := replay.FirstFoldedExpired(ctx, x, seq, unfolded, subj.Includes)
	if err != nil {
		return fmt.Errorf("evlog/projection: %s: reading which events up to seq %d expired, after the deletion at seq %d: %w", r.p.Name, seq, env.Seq, err)
	}
	if !found {
		return nil
	}
	return &replay.HistoryLostError{Subject: subj.Name, Snapshot: snapshot.Meta{Name: subj.Name, LogID: r.src.LogID(), Seq: seq, Time: at, SchemaVersion: subj.SchemaVersion, Scope: subj.Scope.Digest()},
		DeletionSeq: env.Seq, DeletedStream: stream, ExpiredSeq: exp}
}

// refold folds the view again from the events up to the deletion marker
// env.
func (r *Runner[S, E]) refold(ctx context.Context, env event.Envelope) error {
	res, err := replay.State(ctx, r.src, r.cps, r.subject(), replay.AtSeq(env.Seq), r.spec(), replay.Options{Logger: r.opts.Logger})
	if err != nil {
		return fmt.Errorf("evlog/projection: %s: folding again after the deletion at seq %d: %w", r.p.Name, env.Seq, err)
	}
	r.mu.Lock()
	r.state, r.seq, r.time, r.plan, r.unfolded = res.State, env.Seq, env.Time, res.Plan, res.Unfolded
	r.notifyLocked()
	r.mu.Unlock()
	return nil
}
