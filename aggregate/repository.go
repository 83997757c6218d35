package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// Log is what a Repository needs of an event log: replay's Source and an
// append with an expectation.
type Log interface {
	replay.Source
	Append(ctx context.Context, stream string, expect event.Expectation, events ...event.Envelope) (event.Position, error)
}

// Snapshots is what a Repository needs of a snapshot store (nil: none):
// replay's SnapshotStore (read, save and prune).
type Snapshots = replay.SnapshotStore

// Options tune a Repository. The zero value is usable.
type Options struct {
	// MaxAttempts bounds load-decide-append attempts of one Execute when
	// appends conflict (default 10).
	MaxAttempts int
	// SnapshotEvery takes a snapshot of an instance once this many events
	// were appended since its last one (0: never by count).
	SnapshotEvery int
	// SnapshotInterval takes a snapshot once this much time passed since
	// an instance's last one, at its next append (0: never by time).
	SnapshotInterval time.Duration
	// SnapshotRetention says which of an instance's snapshots are kept:
	// after taking one, the repository prunes the instance's snapshots
	// with it (its Now set from Clock). The zero value is
	// snapshot.DefaultPrunePolicy: the newest 2 plus every snapshot of the
	// last hour, the newest of each hour for a day and of each UTC day for
	// 90 days, so that At(time) over the last 90 days replays from a
	// snapshot near its time rather than from the first event. An invalid
	// policy makes every prune fail (reported to Logger).
	SnapshotRetention snapshot.PrunePolicy
	// KeepSnapshots, when SnapshotRetention is zero and KeepSnapshots > 0,
	// keeps exactly the newest N snapshots (no tiers).
	//
	// Deprecated: set SnapshotRetention (KeepLast: N) instead.
	KeepSnapshots int
	// Clock is the time retention tiers measure snapshot ages from (nil:
	// time.Now). Snapshots are dated by their events' recorded times, so
	// it should agree with the log's clock.
	Clock func() time.Time
	// CacheSize bounds the number of instance states kept in memory
	// (default 1024; negative: no cache).
	CacheSize int
	// Logger receives snapshot failures and replay fallbacks (nil: discard),
	// and, at level Error, a background snapshot that panicked (a bug of
	// the state's encoder: the panic is recovered there, since no caller
	// could recover it, and would otherwise end the process).
	Logger *slog.Logger
}

// Repository loads and changes aggregate instances of one type: instance
// id is the stream Definition.Category + "-" + id (Definition.Stream).
// It is safe for concurrent use. Snapshots are taken in the background,
// never on the append path; Close waits for them.
type Repository[S, E any] struct {
	def   Definition[S, E]
	log   Log
	snaps Snapshots
	codec Codec[E]
	opts  Options
	cache *cache[S]

	wg       sync.WaitGroup
	mu       sync.Mutex
	inFlight map[string]bool // instances being snapshotted
	// pending holds, per instance being snapshotted, the newest snapshot
	// that fell due meanwhile; the running worker takes it next, so a
	// busy worker coalesces requests but never drops the last due one
	// (only a Rebuild of the instance does).
	pending map[string]pendingSnap[S]
	// gens counts the Rebuilds of an instance (absent: none): a snapshot
	// is saved only of a state loaded at the instance's current
	// generation (see Rebuild). One entry per instance ever rebuilt.
	gens map[string]uint64
	// saving holds, per instance, the snapshot saves in progress (see
	// beginSave); Rebuild waits for them.
	saving   map[string]*saves
	queues   map[string]*cmdQueue[S, E]
	lastSnap map[string]snapMark
	closed   bool
	defErr   error // def.Validate(): every call fails with it
}

type pendingSnap[S any] struct {
	inst  Instance[S]
	state S
	gen   uint64 // the instance's generation when inst was loaded
}

// saves counts an instance's snapshot saves in progress; idle is closed
// when the count drops to zero.
type saves struct {
	n    int
	idle chan struct{}
}

// generation returns instance id's generation: the number of Rebuilds
// begun on it. A state loaded at an older generation may predate a
// rebuild and is never saved as a snapshot.
func (r *Repository[S, E]) generation(id string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gens[id]
}

// beginSave registers a snapshot save of instance id's state loaded at
// generation gen, and returns the function that ends it; ok is false,
// and nothing must be saved, when a Rebuild began since gen (the state
// may hold data of deleted events, and Rebuild may have removed the
// snapshots before it already).
func (r *Repository[S, E]) beginSave(id string, gen uint64) (end func(), ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gens[id] != gen {
		return nil, false
	}
	s := r.saving[id]
	if s == nil {
		s = &saves{idle: make(chan struct{})}
		r.saving[id] = s
	}
	s.n++
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if s.n--; s.n == 0 {
			close(s.idle)
			delete(r.saving, id)
		}
	}, true
}

type snapMark struct {
	version uint64
	at      time.Time
}

// maxSnapMarks bounds lastSnap: beyond it an arbitrary instance's mark is
// forgotten (not one being snapshotted). A forgotten mark is taken again
// from the snapshot a Load starts from, or else counts from version 0, so
// the worst is an early snapshot.
const maxSnapMarks = 4096

// markLocked records instance id's snapshot mark, keeping lastSnap
// bounded.
func (r *Repository[S, E]) markLocked(id string, m snapMark) {
	if _, ok := r.lastSnap[id]; !ok && len(r.lastSnap) >= maxSnapMarks {
		for old := range r.lastSnap {
			if !r.inFlight[old] {
				delete(r.lastSnap, old)
				break
			}
		}
	}
	r.lastSnap[id] = m
}

// NewRepository returns a repository of the aggregate type def over log,
// with snapshots in snaps (may be nil) and events converted by codec.
func NewRepository[S, E any](log Log, snaps Snapshots, def Definition[S, E], codec Codec[E], opts Options) *Repository[S, E] {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 10
	}
	if opts.SnapshotRetention.IsZero() && opts.KeepSnapshots > 0 {
		opts.SnapshotRetention = snapshot.PrunePolicy{KeepLast: opts.KeepSnapshots}
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = 1024
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Repository[S, E]{def: def, log: log, snaps: snaps, codec: codec, opts: opts,
		cache: newCache[S](opts.CacheSize), inFlight: make(map[string]bool), pending: make(map[string]pendingSnap[S]), lastSnap: make(map[string]snapMark),
		gens: make(map[string]uint64), saving: make(map[string]*saves),
		queues: make(map[string]*cmdQueue[S, E]), defErr: def.Validate()}
}

// check returns the error of a call on instance id: the definition's, or
// an invalid id's.
func (r *Repository[S, E]) check(id string) error {
	if r.defErr != nil {
		return r.defErr
	}
	if err := event.CheckID(r.def.Category, id); err != nil {
		return fmt.Errorf("evlog/aggregate: %w", err)
	}
	return nil
}

// Stream returns the stream name of instance id (Definition.Stream).
func (r *Repository[S, E]) Stream(id string) string { return r.def.Stream(id) }

// Instance is a loaded aggregate instance.
type Instance[S any] struct {
	ID      string
	State   S
	Version uint64    // version of its last event (0: no events)
	Seq     uint64    // seq of its last event
	Time    time.Time // recorded time of its last event
	// Unfolded lists seq ranges up to Seq holding no event folded into
	// State (replay.Result.Unfolded of the fold it was loaded by: after
	// Rebuild, the events gone before it), unchanged by the events
	// Execute appends (they are folded). The repository's snapshots
	// record it (snapshot.Meta.Unfolded), so a deletion after a Rebuild
	// does not report as lost the events that were never folded.
	Unfolded snapshot.SeqRanges
}

// withState returns inst holding state instead.
func (inst Instance[S]) withState(state S) Instance[S] {
	inst.State = state
	return inst
}

// Subject returns the snapshot subject of instance id: the name
// Definition.Name + "/" + its stream name (never Name + "/" + id, the
// subject of snapshots taken before categories, which hold the state of
// another stream), scoped to its stream.
func (r *Repository[S, E]) Subject(id string) replay.Subject {
	stream := r.def.Stream(id)
	return replay.Subject{Name: r.def.name() + "/" + stream, SchemaVersion: r.def.SchemaVersion, Scope: replay.Scope{Stream: stream}}
}

func (r *Repository[S, E]) spec() replay.Spec[S, E] {
	return replay.Spec[S, E]{Init: r.def.New, Decode: r.codec.Decode, Fold: r.def.Apply}
}

// Load returns instance id's current state: from the cache advanced by the
// events appended since (not rebuilt), or by replay from its newest
// snapshot. The returned state is the caller's (a copy when the
// definition has Clone).
func (r *Repository[S, E]) Load(ctx context.Context, id string) (Instance[S], error) {
	if err := r.check(id); err != nil {
		return Instance[S]{}, err
	}
	if inst, ok, err := r.loadCached(ctx, id); err != nil || ok {
		return inst, err
	}
	res, err := r.At(ctx, id, replay.Latest())
	if err != nil {
		return Instance[S]{}, err
	}
	inst := Instance[S]{ID: id, State: res.State, Version: res.Version, Seq: res.Seq, Time: res.Time, Unfolded: res.Unfolded}
	r.cache.put(id, inst.withState(r.def.clone(inst.State)))
	r.mu.Lock()
	if _, ok := r.lastSnap[id]; !ok && res.Plan.Snapshot != nil {
		r.markLocked(id, snapMark{version: res.Version - uint64(res.Applied), at: time.Now()})
	}
	r.mu.Unlock()
	return inst, nil
}

// loadCached returns instance id from the cache advanced by the events
// appended since (ok false: not cached, or a deletion was appended
// meanwhile and the instance must be folded again).
func (r *Repository[S, E]) loadCached(ctx context.Context, id string) (Instance[S], bool, error) {
	inst, ok := r.cachedFresh(ctx, id) // deletion.go
	if !ok {
		return inst, false, nil
	}
	base := inst.Seq
	inst.State = r.def.clone(inst.State)
	n := 0
	for env, err := range r.log.Stream(ctx, r.def.Stream(id), inst.Version+1) {
		if err != nil {
			return Instance[S]{}, false, err
		}
		e, err := r.codec.Decode(env)
		if err != nil {
			return Instance[S]{}, false, fmt.Errorf("evlog/aggregate: decoding %s event %d: %w", id, env.Version, err)
		}
		inst.State = r.def.Apply(inst.State, e)
		inst.Version, inst.Seq, inst.Time = env.Version, env.Seq, env.Time
		n++
	}
	if n == 0 {
		return inst, true, nil
	}
	if r.deletedSince(ctx, id, base) {
		// A deletion was appended after the cache was checked: the
		// events read after it are folded onto a state that may hold
		// the deleted ones.
		r.cache.drop(id)
		return Instance[S]{}, false, nil
	}
	r.cache.put(id, inst.withState(r.def.clone(inst.State)))
	return inst, true, nil
}

// At returns instance id's state at a target (latest, a seq, or a recorded
// time), from its newest usable snapshot at or before the target; the
// result says how it was computed. It fails with replay.ErrHistoryLost (a
// *replay.HistoryLostError), as do Load and Execute, when a deletion made
// the instance's snapshot stale and events it folded have expired since:
// see Rebuild.
func (r *Repository[S, E]) At(ctx context.Context, id string, t replay.Target) (replay.Result[S], error) {
	if err := r.check(id); err != nil {
		return replay.Result[S]{}, err
	}
	var snaps replay.Snapshots
	if r.snaps != nil {
		snaps = r.snaps
	}
	res, err := replay.State(ctx, r.log, snaps, r.Subject(id), t, r.spec(), replay.Options{Logger: r.opts.Logger})
	if errors.Is(err, replay.ErrHistoryLost) {
		return res, fmt.Errorf("evlog/aggregate: instance %q: %w", id, err)
	}
	return res, err
}

// Result is the outcome of Execute.
type Result[S, E any] struct {
	Instance[S]
	Events   []E // the events appended (none when the command decided none)
	Attempts int
}

// Execute runs a command on instance id: load, decide, append the events
// with ExpectVersion(loaded version). When another writer appended to the
// stream in between (a version conflict), it reloads and decides again, up
// to Options.MaxAttempts times. A command error is returned as is and
// nothing is appended for that command.
//
// Commands on one instance from this repository are serialised, and those
// that queue up while one is being appended are decided one after the
// other on the evolving state and appended together, in one atomic batch
// (one fsync): a hot aggregate is not slowed down by conflicts between its
// own callers. Each command's result is its own (its events, the version
// after them). ctx bounds the wait in the queue; once a command is taken
// into a batch, it completes, and Execute returns (commands queued behind
// it are run by another goroutine).
func (r *Repository[S, E]) Execute(ctx context.Context, id string, cmd Command[S, E]) (Result[S, E], error) {
	if err := r.check(id); err != nil {
		return Result[S, E]{}, err
	}
	p := &pendingCmd[S, E]{cmd: cmd, done: make(chan struct{})}
	r.mu.Lock()
	q := r.queues[id]
	if q == nil {
		q = &cmdQueue[S, E]{}
		r.queues[id] = q
	}
	q.items = append(q.items, p)
	leader := !q.running
	q.running = true
	r.mu.Unlock()
	if leader {
		r.lead(ctx, id, q, p)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		if p.state.CompareAndSwap(cmdQueued, cmdCanceled) {
			return Result[S, E]{}, ctx.Err()
		}
		<-p.done
	}
	if p.panicked {
		panic(p.panicValue) // the command's own panic, in its caller
	}
	return p.res, p.err
}

type cmdQueue[S, E any] struct {
	items   []*pendingCmd[S, E]
	running bool
}

type pendingCmd[S, E any] struct {
	cmd   Command[S, E]
	state atomic.Int32
	done  chan struct{}
	res   Result[S, E]
	err   error
	// panicked is set when deciding the command (or loading its instance)
	// panicked; Execute re-panics with panicValue in the caller.
	panicked   bool
	panicValue any
	finished   bool // done is closed (touched by the leader only)
}

// finish completes p with a result; the leader calls it once per command.
func (p *pendingCmd[S, E]) finish(res Result[S, E], err error) {
	p.res, p.err, p.finished = res, err, true
	close(p.done)
}

// finishPanic completes p with a panic that Execute re-raises.
func (p *pendingCmd[S, E]) finishPanic(v any) {
	p.panicked, p.panicValue, p.finished = true, v, true
	close(p.done)
}

const (
	cmdQueued int32 = iota
	cmdTaken
	cmdCanceled
)

// lead runs the queued commands of instance id in batches until the queue
// is empty. A caller leading for its own command (own) hands the queue
// over to a goroutine once that command is done, so that its Execute
// returns however many commands other callers keep queueing.
func (r *Repository[S, E]) lead(ctx context.Context, id string, q *cmdQueue[S, E], own *pendingCmd[S, E]) {
	ctx = context.WithoutCancel(ctx) // a batch carries other callers' commands
	for {
		r.mu.Lock()
		batch := q.items
		q.items = nil
		if len(batch) == 0 {
			q.running = false
			delete(r.queues, id)
			r.mu.Unlock()
			return
		}
		if own != nil && own.finished {
			q.items = batch
			r.mu.Unlock()
			// It ends when the queue is empty; every command in it
			// has a caller waiting for it.
			go r.lead(ctx, id, q, nil)
			return
		}
		r.mu.Unlock()
		taken := batch[:0]
		for _, p := range batch {
			if p.state.CompareAndSwap(cmdQueued, cmdTaken) {
				taken = append(taken, p)
			}
		}
		r.runBatchSafe(ctx, id, taken)
	}
}

// runBatchSafe runs a batch so that a panic (in loading the instance, in
// the definition or the codec) never wedges the instance: every command of
// the batch still waiting gets the panic, re-raised by Execute in its
// caller, and the leader goes on with the queue.
func (r *Repository[S, E]) runBatchSafe(ctx context.Context, id string, batch []*pendingCmd[S, E]) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		r.cache.drop(id) // the cached state may be half-applied
		for _, p := range batch {
			if !p.finished {
				p.finishPanic(v)
			}
		}
	}()
	r.runBatch(ctx, id, batch)
}

// runBatch decides a batch of commands in order and appends their events
// in one atomic append, retrying the whole batch on conflicts.
func (r *Repository[S, E]) runBatch(ctx context.Context, id string, batch []*pendingCmd[S, E]) {
	finish := (*pendingCmd[S, E]).finish
	var lastErr error
	for attempt := 1; attempt <= r.opts.MaxAttempts; attempt++ {
		if len(batch) == 0 {
			return
		}
		gen := r.generation(id) // before the state is loaded
		inst, err := r.Load(ctx, id)
		if err != nil {
			for _, p := range batch {
				finish(p, Result[S, E]{}, err)
			}
			return
		}
		state := inst.State
		var envs []event.Envelope
		type outcome struct {
			p      *pendingCmd[S, E]
			events []E
			state  S
			count  int // events appended up to and including this command
			err    error
		}
		outs := make([]outcome, len(batch))
		panicked := -1
		for i, p := range batch {
			// A panicking command is completed with its panic (re-raised in
			// its caller); the others are decided again on a reloaded state,
			// since the panic may have left state half-applied.
			func() {
				defer func() {
					if v := recover(); v != nil {
						p.finishPanic(v)
						panicked = i
					}
				}()
				events, err := p.cmd(r.def.clone(state))
				outs[i] = outcome{p: p, events: events, err: err}
				if err == nil {
					mark := len(envs)
					for _, e := range events {
						env, eerr := r.codec.Encode(e)
						if eerr != nil {
							err = fmt.Errorf("evlog/aggregate: encoding an event of %s: %w", id, eerr)
							break
						}
						envs = append(envs, env)
					}
					if err != nil {
						envs = envs[:mark] // nothing of a failed command
						outs[i].err = err
					} else {
						state = r.def.ApplyAll(state, events...)
					}
				}
				outs[i].state = r.def.clone(state)
				outs[i].count = len(envs)
			}()
			if panicked >= 0 {
				break
			}
		}
		if panicked >= 0 {
			batch = slices.Delete(slices.Clone(batch), panicked, panicked+1)
			r.cache.drop(id)
			attempt-- // not a conflict
			continue
		}
		if len(envs) == 0 {
			for _, o := range outs {
				finish(o.p, Result[S, E]{Instance: inst.withState(o.state), Attempts: attempt}, o.err)
			}
			return
		}
		pos, err := r.log.Append(ctx, r.def.Stream(id), event.ExpectVersion(inst.Version), envs...)
		if errors.Is(err, event.ErrVersionConflict) {
			lastErr = err
			r.cache.drop(id)
			continue
		}
		if err != nil {
			for _, p := range batch {
				finish(p, Result[S, E]{}, err)
			}
			return
		}
		if r.deletedSince(ctx, id, inst.Seq) {
			// A deletion was appended between the load and the append:
			// state may hold data of the events it deleted, at a seq past
			// it, so it is neither cached nor snapshotted (the next Load
			// folds the instance again).
			r.cache.drop(id)
		} else {
			final := Instance[S]{ID: id, State: state, Version: pos.Version, Seq: pos.Seq, Time: pos.Time, Unfolded: inst.Unfolded}
			r.cache.put(id, final.withState(r.def.clone(state)))
			r.maybeSnapshot(id, final, gen)
		}
		n := uint64(len(envs))
		for _, o := range outs {
			if o.err != nil {
				finish(o.p, Result[S, E]{}, o.err)
				continue
			}
			back := n - uint64(o.count) // events appended after this command's
			in := Instance[S]{ID: id, State: o.state, Version: pos.Version - back, Seq: pos.Seq - back, Time: pos.Time, Unfolded: inst.Unfolded}
			finish(o.p, Result[S, E]{Instance: in, Events: o.events, Attempts: attempt}, nil)
		}
		return
	}
	err := fmt.Errorf("%w (%d attempts): %w", ErrTooManyConflicts, r.opts.MaxAttempts, lastErr)
	for _, p := range batch {
		finish(p, Result[S, E]{}, err)
	}
}

// maybeSnapshot takes a background snapshot of inst when the policy says
// so. While a snapshot of the same instance is running, the newest due
// request waits as pending and the running worker takes it next: requests
// coalesce, but the last due snapshot is always written (Close waits for
// it), unless a Rebuild of the instance began after inst was loaded (at
// generation gen): then it is dropped.
func (r *Repository[S, E]) maybeSnapshot(id string, inst Instance[S], gen uint64) {
	if r.snaps == nil || (r.opts.SnapshotEvery <= 0 && r.opts.SnapshotInterval <= 0) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	last, seen := r.lastSnap[id]
	if !seen {
		last = snapMark{at: time.Now()}
		r.markLocked(id, last)
	}
	due := r.opts.SnapshotEvery > 0 && inst.Version-last.version >= uint64(r.opts.SnapshotEvery) ||
		r.opts.SnapshotInterval > 0 && time.Since(last.at) >= r.opts.SnapshotInterval
	if !due || r.closed || r.gens[id] != gen {
		return
	}
	r.markLocked(id, snapMark{version: inst.Version, at: time.Now()})
	next := pendingSnap[S]{inst: inst, state: r.def.clone(inst.State), gen: gen}
	if r.inFlight[id] {
		r.pending[id] = next // replaces an older pending one: coalesced
		return
	}
	r.inFlight[id] = true
	r.wg.Go(func() {
		for {
			if err := r.backgroundSnapshot(id, next); err != nil {
				r.opts.Logger.Warn("evlog/aggregate: snapshot failed", "aggregate", r.def.name(), "id", id, "err", err)
			}
			r.mu.Lock()
			p, ok := r.pending[id]
			delete(r.pending, id)
			if !ok {
				delete(r.inFlight, id)
			}
			r.mu.Unlock()
			if !ok {
				return
			}
			next = p
		}
	})
}

// backgroundSnapshot is snapshot on the background worker. A panic there
// (the state's encoder, the store) has no caller to reach and would end
// the process: it is reported to the Logger as an error, and the worker
// goes on (the next due snapshot is tried again; loads replay from the
// last good one meanwhile).
func (r *Repository[S, E]) backgroundSnapshot(id string, next pendingSnap[S]) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.opts.Logger.Error("evlog/aggregate: a background snapshot panicked; no snapshot of this instance is saved until the state's encoder (or the snapshot store) is fixed",
				"aggregate", r.def.name(), "id", id, "version", next.inst.Version, "panic", fmt.Sprint(p))
			err = nil
		}
	}()
	return r.snapshot(context.Background(), id, next.gen, next.inst, next.state)
}

// snapshot saves state as instance id's snapshot at inst.Seq and prunes,
// unless a Rebuild of the instance began since the state was loaded (at
// generation gen): then it saves nothing and returns nil.
func (r *Repository[S, E]) snapshot(ctx context.Context, id string, gen uint64, inst Instance[S], state S) error {
	end, ok := r.beginSave(id, gen)
	if !ok {
		r.opts.Logger.Debug("evlog/aggregate: dropped a snapshot of a state loaded before a rebuild", "aggregate", r.def.name(), "id", id, "version", inst.Version)
		return nil
	}
	defer end()
	subj := r.Subject(id)
	res := replay.Result[S]{State: state, Seq: inst.Seq, Time: inst.Time, Version: inst.Version, Unfolded: inst.Unfolded}
	if _, _, err := replay.Save(ctx, r.snaps, r.log.LogID(), subj, r.spec(), res); err != nil && !errors.Is(err, snapshot.ErrExists) {
		return err
	}
	p := r.opts.SnapshotRetention
	p.Now = r.opts.Clock()
	if _, err := r.snaps.Prune(ctx, subj.Name, p); err != nil {
		// Saved: say so, or a caller retries a save that succeeded (after
		// a failed directory fsync, Prune refuses until the next restart:
		// snapshot.ErrDirSyncFailed).
		return fmt.Errorf("evlog/aggregate: the snapshot of %s at version %d was saved, but pruning older ones failed: %w", id, inst.Version, err)
	}
	return nil
}

// Snapshot takes a snapshot of instance id now (synchronously), saving and
// pruning with ctx. When a Rebuild of the instance begins meanwhile, it
// saves nothing and returns nil (the state it loaded may predate it).
func (r *Repository[S, E]) Snapshot(ctx context.Context, id string) error {
	if r.snaps == nil {
		return errors.New("evlog/aggregate: the repository has no snapshot store")
	}
	if err := r.check(id); err != nil {
		return err
	}
	gen := r.generation(id)
	inst, err := r.Load(ctx, id)
	if err != nil || inst.Version == 0 {
		return err
	}
	return r.snapshot(ctx, id, gen, inst, inst.State)
}

// Close waits for background snapshots to finish, including the last one
// the policy found due (so it is on disk when Close returns). The
// repository must not be used afterwards.
func (r *Repository[S, E]) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}
