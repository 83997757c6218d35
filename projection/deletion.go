package projection

import (
	"context"
	"fmt"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/replay"
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
		last, _, err := replay.LastDeletionIn(ctx, r.src, r.subject().Scope)
		if err != nil {
			return fmt.Errorf("evlog/projection: %s: after the deletion at seq %d: %w", r.p.Name, env.Seq, err)
		}
		if last > seq {
			return r.refold(ctx, env)
		}
	}
	r.cover(env)
	return nil
}

// refold folds the view again from the events up to the deletion marker
// env.
func (r *Runner[S, E]) refold(ctx context.Context, env event.Envelope) error {
	res, err := replay.State(ctx, r.src, r.cps, r.subject(), replay.AtSeq(env.Seq), r.spec(), replay.Options{Logger: r.opts.Logger})
	if err != nil {
		return fmt.Errorf("evlog/projection: %s: folding again after the deletion at seq %d: %w", r.p.Name, env.Seq, err)
	}
	r.mu.Lock()
	r.state, r.seq, r.time, r.plan = res.State, env.Seq, env.Time, res.Plan
	r.notifyLocked()
	r.mu.Unlock()
	return nil
}
