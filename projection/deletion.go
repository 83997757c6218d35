package projection

import (
	"context"
	"fmt"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/replay"
)

// systemEvent handles an event of one of evlog's system streams met while
// following the log: it is not folded, but the view covers it; a deletion
// marker (event.DeletionsStream) folds the view again from the events up
// to it, which no longer yield the deleted ones (checkpoints from before
// it are passed over: see replay.Deletions), so the view never keeps
// serving deleted data. The next checkpoint saves the rebuilt view.
func (r *Runner[S, E]) systemEvent(ctx context.Context, env event.Envelope) error {
	if env.Stream != event.DeletionsStream {
		r.mu.Lock()
		r.seq, r.time = env.Seq, env.Time
		r.notifyLocked()
		r.mu.Unlock()
		return nil
	}
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
