package aggregate

import (
	"context"

	"github.com/evlog/evlog/replay"
)

// A cached state (and a snapshot taken by the repository) at seq s must
// reflect every deletion of its stream (see replay.ScopedDeletions) with
// a seq up to s: a deletion of the stream after s makes the cache drop
// it, and a replay passes over a snapshot from before such a deletion,
// but neither looks back past s. A state folded from one read of the log
// meets that by construction; a state advanced from an older one (the
// cache plus the events after it, or a command's events appended after
// its load) meets it only if no deletion of its stream was appended since
// the older state's seq, which deletedSince checks. Deletions of other
// streams are no concern of an instance's state.

// cachedFresh returns instance id from the cache unless a deletion of its
// stream was appended after the cached state's last event: the state may
// then hold data of deleted events, so it is dropped and the instance is
// folded again from its events (and a snapshot from after the deletion,
// if any). A log whose deletions cannot be read is treated the same way
// (the replay reports the error).
func (r *Repository[S, E]) cachedFresh(ctx context.Context, id string) (Instance[S], bool) {
	inst, ok := r.cache.get(id)
	if !ok {
		return inst, false
	}
	if r.deletedSince(ctx, id, inst.Seq) {
		r.cache.drop(id)
		return Instance[S]{}, false
	}
	return inst, true
}

// deletedSince reports whether the log holds a deletion of instance id's
// stream appended after seq (or its deletions cannot be read; a log that
// cannot tell which stream a deletion deleted: any deletion): a state of
// the events up to seq advanced by later events may then hold data of
// events deleted in between.
func (r *Repository[S, E]) deletedSince(ctx context.Context, id string, seq uint64) bool {
	last, _, err := replay.LastDeletionIn(ctx, r.log, r.Subject(id).Scope)
	return err != nil || last > seq
}
