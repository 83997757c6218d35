package aggregate

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
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

// Rebuild is the explicit way past replay.ErrHistoryLost for instance id:
// the application's decision to go on without the effect of events that
// are gone. Load, At and Execute fail with that error (a
// *replay.HistoryLostError) when a deletion in the instance's stream made
// its snapshot stale (the snapshot may hold data of the deleted events)
// and events the snapshot folded have expired by retention since, so that
// folding again would silently lose their effect. Nothing past that error
// happens by default: it is returned until Rebuild is called (or the log
// and its snapshots are restored from a backup taken before the events
// expired, which keeps them).
//
// Rebuild removes the instance's stale snapshots (those of its subject
// and schema version, of this log, before the newest deletion of its
// stream), oldest first, and loads the instance again. When that Load
// fails with replay.ErrExpiredUnfolded (events of the stream after its
// newest snapshot expired before they were folded: a Retention.MaxCount
// shorter than the snapshot interval), it also removes the snapshots
// before the first such event, the same way, and loads again. The state that
// results is Definition.Init folded with the events its stream still
// holds: neither deleted nor expired. What is lost is the effect of every
// event the removed snapshots folded that has expired since (the first is
// HistoryLostError.ExpiredSeq); events the log still holds are folded
// again. Version continues after the stream's last version (deleted and
// expired versions count), so commands continue the stream.
//
// Durability: each removal is durable when the store's Remove returns
// (*snapshot.Store fsyncs the directory), and the removal is the record
// of the decision: once the stale snapshots are gone, Load and Execute
// fold the events that are left, in this process and after a restart,
// and never report this loss again; the next snapshot (taken after a
// command, by policy or Snapshot) lies after the deletion and is used as
// usual. The rebuilt state records the events that were gone when it was
// folded (Instance.Unfolded), and so do its snapshots: a later deletion
// in the stream folds again without reporting them as lost; an event it
// did fold that expires afterwards is a loss again. Interrupted (a crash, an error) before the newest stale snapshot
// is removed, Load still fails with ErrHistoryLost, never with a wrong
// state, and calling Rebuild again finishes. Rebuild is idempotent, and
// with no loss pending it changes nothing Load returns (a stale snapshot
// is never used). A store that cannot remove a snapshot (no
// Remove(ctx, snapshot.Meta) error method; *snapshot.Store has one)
// cannot record the decision: Rebuild then fails with an error matching
// errors.ErrUnsupported and leaves everything as it was. A repository
// without a snapshot store has no snapshot to lose: Rebuild is Load.
//
// Rebuild is safe for concurrent use; a command running meanwhile on the
// same instance either fails with ErrHistoryLost or runs on the rebuilt
// state. Snapshots of the instance do not outlive it: before removing
// anything, Rebuild drops the instance's background snapshots that fell
// due and were not started, and waits for the saves in progress
// (background ones and Snapshot calls) to finish, so that it removes
// what they saved if it is stale; a snapshot of a state loaded before
// Rebuild began is never saved afterwards (a background one is dropped,
// Snapshot saves nothing and returns nil). When ctx ends during that
// wait, Rebuild fails with ctx's error having removed nothing: call it
// again. Only the process that writes the log should call it.
func (r *Repository[S, E]) Rebuild(ctx context.Context, id string) (Instance[S], error) {
	if err := r.check(id); err != nil {
		return Instance[S]{}, err
	}
	if r.snaps != nil {
		if err := r.quiesce(ctx, id); err != nil {
			return Instance[S]{}, err
		}
		if err := r.dropStale(ctx, id); err != nil {
			return Instance[S]{}, err
		}
	}
	r.cache.drop(id)
	r.mu.Lock()
	delete(r.lastSnap, id) // its snapshot may be gone
	r.mu.Unlock()
	inst, err := r.Load(ctx, id)
	eu, ok := errors.AsType[*replay.ExpiredUnfoldedError](err)
	if !ok || eu.Snapshot == nil || r.snaps == nil {
		return inst, err
	}
	// Events after its newest snapshot expired before they were folded:
	// every snapshot before the first is of a history the stream no
	// longer continues (see Rebuild).
	if err := r.dropBelow(ctx, id, eu.ExpiredSeq, fmt.Sprintf("the event at seq %d after it expired before it was folded", eu.ExpiredSeq)); err != nil {
		return Instance[S]{}, err
	}
	r.cache.drop(id)
	r.mu.Lock()
	delete(r.lastSnap, id)
	r.mu.Unlock()
	return r.Load(ctx, id)
}

// quiesce begins a new generation of instance id, so that no snapshot of
// a state loaded before is saved from now on (a pending background one is
// dropped), and waits for the saves in progress to finish (see Rebuild).
func (r *Repository[S, E]) quiesce(ctx context.Context, id string) error {
	r.mu.Lock()
	r.gens[id]++
	delete(r.pending, id)
	s := r.saving[id]
	r.mu.Unlock()
	if s == nil {
		return nil
	}
	r.opts.Logger.Debug("evlog/aggregate: rebuilding: waiting for a snapshot in flight", "aggregate", r.def.name(), "id", id)
	select {
	case <-s.idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("evlog/aggregate: %s: waiting for a snapshot being saved before rebuilding (nothing was removed; call Rebuild again): %w", id, context.Cause(ctx))
	}
}

// remover is implemented by a snapshot store that can remove one
// snapshot (*snapshot.Store).
type remover interface {
	Remove(ctx context.Context, m snapshot.Meta) error
}

// dropStale removes instance id's snapshots that a deletion of its stream
// made stale, oldest first (see Rebuild).
func (r *Repository[S, E]) dropStale(ctx context.Context, id string) error {
	deleted, _, err := replay.LastDeletionIn(ctx, r.log, r.Subject(id).Scope)
	if err != nil || deleted == 0 {
		return err
	}
	return r.dropBelow(ctx, id, deleted, fmt.Sprintf("the deletion at seq %d", deleted))
}

// dropBelow removes instance id's snapshots (of its subject and schema
// version, of this log) with a seq below the seq below, which why made
// unusable, oldest first (see Rebuild).
func (r *Repository[S, E]) dropBelow(ctx context.Context, id string, below uint64, why string) error {
	subj := r.Subject(id)
	deleted := below // the first seq whose snapshots stay
	logID := r.log.LogID()
	var stale []snapshot.Meta // newest first
	for c, err := range r.snaps.Candidates(subj.Name, deleted-1) {
		if err != nil {
			return fmt.Errorf("evlog/aggregate: %s: listing the snapshots to rebuild: %w", id, err)
		}
		m := c.Meta
		if c.Unreadable == "" && m.SchemaVersion == subj.SchemaVersion && m.LogID == logID && m.Seq < deleted {
			stale = append(stale, m)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	rm, ok := r.snaps.(remover)
	if !ok {
		return fmt.Errorf("evlog/aggregate: %s: rebuilding needs a snapshot store that can remove the %d snapshot(s) %s made stale (*snapshot.Store can): %w",
			id, len(stale), why, errors.ErrUnsupported)
	}
	for _, m := range slices.Backward(stale) {
		if err := rm.Remove(ctx, m); err != nil && !errors.Is(err, snapshot.ErrNotFound) {
			return fmt.Errorf("evlog/aggregate: %s: removing stale snapshot %s to rebuild (call Rebuild again): %w", id, m.File, err)
		}
		r.opts.Logger.Warn("evlog/aggregate: rebuilding: removed a stale snapshot", "aggregate", r.def.name(), "id", id, "file", m.File, "seq", m.Seq, "stale_by", why)
	}
	return nil
}
