package aggregate

import (
	"context"

	"github.com/evlog/evlog/replay"
)

// cachedFresh returns instance id from the cache unless a stream deletion
// (see replay.Deletions) was appended after the cached state's last event:
// the state may then hold data of deleted events, so it is dropped and the
// instance is folded again from its events (and a snapshot from after the
// deletion, if any). A log whose deletions cannot be read is treated the
// same way (the replay reports the error).
func (r *Repository[S, E]) cachedFresh(ctx context.Context, id string) (Instance[S], bool) {
	inst, ok := r.cache.get(id)
	if !ok {
		return inst, false
	}
	if d, ok := r.log.(replay.Deletions); ok {
		if seq, err := d.LastDeletionSeq(ctx); err != nil || seq > inst.Seq {
			r.cache.drop(id)
			return Instance[S]{}, false
		}
	}
	return inst, true
}
