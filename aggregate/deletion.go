package aggregate

import (
	"context"

	"github.com/evlog/evlog/replay"
)

// A cached state (and a snapshot taken by the repository) at seq s must
// reflect every deletion (see replay.Deletions) with a seq up to s: a
// deletion after s makes the cache drop it, and a replay passes over a
// snapshot from before a deletion, but neither looks back past s. A state
// folded from one read of the log meets that by construction; a state
// advanced from an older one (the cache plus the events after it, or a
// command's events appended after its load) meets it only if no deletion
// was appended since the older state's seq, which deletedSince checks.

// cachedFresh returns instance id from the cache unless a stream deletion
// was appended after the cached state's last event: the state may then
// hold data of deleted events, so it is dropped and the instance is folded
// again from its events (and a snapshot from after the deletion, if any).
// A log whose deletions cannot be read is treated the same way (the
// replay reports the error).
func (r *Repository[S, E]) cachedFresh(ctx context.Context, id string) (Instance[S], bool) {
	inst, ok := r.cache.get(id)
	if !ok {
		return inst, false
	}
	if r.deletedSince(ctx, inst.Seq) {
		r.cache.drop(id)
		return Instance[S]{}, false
	}
	return inst, true
}

// deletedSince reports whether the log holds a deletion appended after
// seq (or its deletions cannot be read): a state of the events up to seq
// advanced by later events may then hold data of events deleted in
// between.
func (r *Repository[S, E]) deletedSince(ctx context.Context, seq uint64) bool {
	d, ok := r.log.(replay.Deletions)
	if !ok {
		return false
	}
	last, err := d.LastDeletionSeq(ctx)
	return err != nil || last > seq
}
