package projection

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// Source is what a Runner needs of a log: replay's Source and a
// subscription delivering history then live events.
type Source interface {
	replay.Source
	// Subscribe iterates events from seq from on, in seq order, without
	// gaps or duplicates, waiting for new ones until ctx is done.
	Subscribe(ctx context.Context, from uint64) iter.Seq2[event.Envelope, error]
}

// Checkpoints is what a Runner needs of a snapshot store: replay's
// SnapshotStore (read, save and prune).
type Checkpoints = replay.SnapshotStore

// RetentionSource is implemented by a Source that can tell whether its
// events can come to read as gone (expire) other than by a deletion,
// with no further write to the log (*evlog.Log: true when the log
// records retention, evlog.Options.Retention). A Runner replaces a
// checkpoint of another fold of its projection only over a source that
// says false (see RunnerOptions.ReplaceOtherFoldDespiteRetention): once
// an event the other fold's checkpoint folded expires, that checkpoint
// is the only record of its effect. An error removes nothing: the
// checkpoint fails with it (Run returns it).
type RetentionSource interface {
	ExpiresEvents(ctx context.Context) (bool, error)
}

// RunnerOptions tune a Runner.
type RunnerOptions struct {
	// CheckpointEvery saves a checkpoint after this many new events
	// (default 10,000), and CheckpointInterval after this much time with
	// new events (default 10s), whichever comes first: events followed
	// by silence are checkpointed once CheckpointInterval has passed
	// since the last checkpoint, without waiting for the next event.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// CheckpointRetention says which checkpoints are kept: after saving
	// one, the runner prunes its checkpoints with it (its Now set from
	// Clock; even when Run's ctx is done right after the save, with a
	// context bounded by StopTimeout), fold by fold (its Fold set: checkpoints of another
	// SchemaVersion, scope or log under the projection's Name are judged
	// on their own, so KeepLast N keeps the newest N of the current fold
	// and the newest N of each other one). The zero value is snapshot.DefaultPrunePolicy: the newest 2
	// plus every checkpoint of the last hour, the newest of each hour for
	// a day and of each UTC day for 90 days, so that the view at a past
	// time (replay.State with AtTime) starts from a checkpoint near it.
	CheckpointRetention snapshot.PrunePolicy
	// KeepCheckpoints, when CheckpointRetention is zero and
	// KeepCheckpoints > 0, keeps exactly the newest N checkpoints.
	//
	// Deprecated: set CheckpointRetention (KeepLast: N) instead.
	KeepCheckpoints int
	// Clock is the time retention tiers measure checkpoint ages from
	// (nil: time.Now); checkpoints are dated by their last event's
	// recorded time.
	Clock func() time.Time
	// StopTimeout bounds the final checkpoint written when Run's ctx is
	// done (with a context of its own, as ctx can no longer be used), and
	// the prune after each checkpoint saved (also with a context of its
	// own: a Run stopped right after a save still prunes). Default 30s.
	StopTimeout time.Duration
	Logger      *slog.Logger
	// ReplaceOtherFoldDespiteRetention lets the runner replace a
	// checkpoint of another fold of the projection (another
	// SchemaVersion or Categories) at the seq of its view on a log whose
	// events can expire (RetentionSource says so, or the source cannot
	// tell), as it does on a log without retention, when no event up to
	// that seq has expired yet. The risk: an event up to that seq that
	// expires later (MaxAge as the clock moves, MaxCount as its stream
	// grows) had its effect recorded only in the removed checkpoint, so
	// the other fold, rolled back to (its SchemaVersion or Categories
	// again), folds from an older checkpoint of its own and fails with
	// replay.ErrExpiredUnfolded, or folds from the first event and
	// silently serves a view without that event's effect. Set it only
	// when no rollback of the fold will ever be run, or a backup taken
	// before the change keeps the other fold's checkpoints. Default
	// false: on such a log the other fold's checkpoint is kept (logged
	// at Warn) and the view is checkpointed once the log grows.
	ReplaceOtherFoldDespiteRetention bool
}

// ErrRunning is returned by Run and Rebuild on a Runner that is running
// (one Run or Rebuild at a time per Runner: a second would fold every event
// into the view again).
var ErrRunning = errors.New("evlog/projection: the runner is already running; stop it (cancel its context) first")

// ErrStopped is returned by WaitFor when the runner's Run (or Rebuild)
// ended before its view covered the seq waited for; the error also
// carries what Run returned. Run the runner again, then wait again.
var ErrStopped = errors.New("evlog/projection: the runner stopped before its view covered the seq")

// Runner keeps a projection's view up to date and persisted.
type Runner[S, E any] struct {
	p      Projection[S, E]
	src    Source
	cps    Checkpoints
	decode func(event.Envelope) (E, error)
	opts   RunnerOptions

	running atomic.Bool // Run or Rebuild is in progress
	// rebuilding: Rebuild's marker may be in place, to remove once the
	// view is checkpointed (used by the running Run only).
	rebuilding bool

	mu    sync.RWMutex
	state S
	seq   uint64
	time  time.Time
	plan  *replay.Plan
	// unfolded: seq ranges up to seq holding no event folded into state
	// (replay.Result.Unfolded), recorded in its checkpoints.
	unfolded snapshot.SeqRanges
	changed  chan struct{}
	// ended: the last Run or Rebuild has returned, with endErr (nil
	// for a panic, told by endPanic); cleared when the next one starts.
	ended    bool
	endErr   error
	endPanic bool
	// lost: a Run (or Rebuild) ended with replay.ErrHistoryLost (this
	// error): the view is the empty view at seq 0, and View and WaitFor
	// report lost, until a Run or Rebuild has a view again.
	lost error
}

// NewRunner returns a runner of p over src, checkpointing into cps, with
// events decoded by decode.
func NewRunner[S, E any](p Projection[S, E], src Source, cps Checkpoints, decode func(event.Envelope) (E, error), opts RunnerOptions) *Runner[S, E] {
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = 10_000
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = 10 * time.Second
	}
	if opts.CheckpointRetention.IsZero() && opts.KeepCheckpoints > 0 {
		opts.CheckpointRetention = snapshot.PrunePolicy{KeepLast: opts.KeepCheckpoints}
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner[S, E]{p: p, src: src, cps: cps, decode: decode, opts: opts, state: p.New(), changed: make(chan struct{})}
}

func (r *Runner[S, E]) subject() replay.Subject {
	return replay.Subject{Name: "projection/" + r.p.Name, SchemaVersion: r.p.SchemaVersion, Scope: replay.Scope{Categories: r.p.Categories}}
}

func (r *Runner[S, E]) spec() replay.Spec[S, E] {
	return replay.Spec[S, E]{Init: r.p.New, Decode: r.decode, Fold: r.p.Apply}
}

// State returns the view and the seq of the last event folded into it.
// With a view that Apply modifies in place, callers must not modify it
// and must not keep it across a later Run step; use Read for that. A view
// that is not served (see View) is the empty view at seq 0.
func (r *Runner[S, E]) State() (S, uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.state, r.seq
}

// Read calls fn with the view while the runner cannot change it. A view
// that is not served (see View) is the empty view at seq 0.
func (r *Runner[S, E]) Read(fn func(S, uint64)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn(r.state, r.seq)
}

// View is Read that reports a view the runner cannot serve: once a Run
// (or Rebuild) has ended with replay.ErrHistoryLost — a deletion in the
// view's scope after events it folded expired (retention, Compact), so
// that the view held data of deleted events and folding again would
// silently lose the expired events' effect — View returns an error
// matching replay.ErrHistoryLost (errors.AsType *replay.HistoryLostError
// names the checkpoint, the deletion and the first expired event) without
// calling fn, and so does WaitFor, until the decision is made, as with
// aggregate.Repository.Rebuild: Rebuild folds the events that are left
// (the expired events' effect is lost; Rebuild records that by removing
// the old checkpoints, so a restart does not report the loss again), or
// the log and its checkpoints are restored from a backup taken before the
// events expired (a Run then starts over). Meanwhile State and Read give
// the empty view at seq 0; a Run (not Rebuild) fails with the same error.
// Otherwise View calls fn as Read does and returns nil.
func (r *Runner[S, E]) View(fn func(S, uint64)) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.lost != nil {
		return r.lostErrorLocked()
	}
	fn(r.state, r.seq)
	return nil
}

// lostErrorLocked is the error View and WaitFor report for r.lost.
func (r *Runner[S, E]) lostErrorLocked() error {
	return fmt.Errorf("evlog/projection: %s: the view is not served: Rebuild folds the events that are left (a restore from a backup taken before they expired keeps them): %w", r.p.Name, r.lost)
}

// Plan returns how the runner started (checkpoint used, fallbacks).
func (r *Runner[S, E]) Plan() *replay.Plan {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.plan
}

// WaitFor blocks until the view covers seq, ctx is done, or a Run (or
// Rebuild) that was running, or has run, ended without covering it: then
// it returns an error matching ErrStopped (and what Run returned). Before
// the first Run it waits for one. While the view is not served after
// replay.ErrHistoryLost (see View), it returns at once an error matching
// replay.ErrHistoryLost (and ErrStopped, once the Run has ended), for
// every seq, until Rebuild.
func (r *Runner[S, E]) WaitFor(ctx context.Context, seq uint64) error {
	for {
		r.mu.RLock()
		done, ch, at := r.seq >= seq, r.changed, r.seq
		ended, endErr, endPanic := r.ended, r.endErr, r.endPanic
		var lost error
		if r.lost != nil {
			lost = r.lostErrorLocked()
		}
		r.mu.RUnlock()
		switch {
		case lost != nil && ended:
			return fmt.Errorf("%w (waiting for %d): %w", ErrStopped, seq, lost)
		case lost != nil:
			return lost
		case done:
			return nil
		case ended && endPanic:
			return fmt.Errorf("%w (at seq %d, waiting for %d): Run ended by a panic (in Apply, the decoder, or encoding the view for a checkpoint): fix it, then Run again", ErrStopped, at, seq)
		case ended && endErr == nil:
			return fmt.Errorf("%w (at seq %d, waiting for %d): Run returned", ErrStopped, at, seq)
		case ended:
			return fmt.Errorf("%w (at seq %d, waiting for %d): Run returned: %w", ErrStopped, at, seq, endErr)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Run starts from the newest usable checkpoint (or from the first event:
// none, or one of another schema version or scope), catches up, then
// follows live appends until ctx is done, checkpointing on the way and
// when it stops (that final checkpoint, of everything folded since the
// last one, is written with its own context bounded by StopTimeout, even
// when ctx is cancelled right after catching up). A checkpoint of another
// fold (SchemaVersion, Categories) at the seq of one it saves is replaced
// when no event up to that seq has expired and none can expire later (the
// log records no retention, see RetentionSource; or
// RunnerOptions.ReplaceOtherFoldDespiteRetention): it can be folded again
// from the log. It is kept otherwise, and the view is checkpointed once
// the log grows. It returns ctx's error (joined with
// the final checkpoint's, if that failed), or the first
// read/decode/checkpoint error; after replay.ErrHistoryLost (a deletion
// in the view's scope met while starting or following, after events the
// view folded expired — checked for its checkpoints and for the view it
// holds in memory, with or without a checkpoint store) the view is not
// served until Rebuild (see View). An event of the view's scope that
// expired (retention) before the runner folded it — after its
// checkpoint's seq while it was stopped, or while it lagged behind live
// appends — ends Run with an error matching replay.ErrExpiredUnfolded (an
// *replay.ExpiredUnfoldedError naming the first such event), never a
// view silently missing it; the view it had stays served (it is correct
// up to its seq), a restart from the same checkpoint fails the same way,
// and Rebuild folds the events that are left (expired events of other
// Categories do not count).
// One Run or Rebuild runs at a time: another call meanwhile returns
// ErrRunning. A panic in Apply goes on to Run's caller; the view is then
// the empty view at seq 0 (State, Read; WaitFor returns ErrStopped), never
// the half-folded one Apply may leave, and the runner can be run again
// (it starts over from its newest checkpoint). A panic in the decoder or
// in encoding the view for a checkpoint (a view's MarshalMsgpack) goes on
// to Run's caller too, with the view as it was.
func (r *Runner[S, E]) Run(ctx context.Context) error {
	return r.run(ctx, false)
}

// Rebuild is Run from the first event, ignoring checkpoints, and the way
// past replay.ErrHistoryLost (see View): the projection's checkpoints are
// removed first (when the Checkpoints can Remove, as *snapshot.Store can),
// so that neither a restart nor a view
// at a past time starts from a checkpoint of the old fold, even one at
// the seq the rebuilt view reaches; fresh checkpoints are written as it
// goes. Before removing them it saves a marker (the subject
// "projection-rebuild/" + Name), removed once the rebuilt view is
// checkpointed: killed midway (even with some old checkpoints removed and
// others not), the next Run finds the marker and rebuilds again. With
// Checkpoints that cannot Remove, the old checkpoints are only replaced
// by fresh ones at later seqs (pruned by CheckpointRetention). While it
// runs, the view is the empty view at seq 0 until the rebuilt one is
// there (a Run that finds an interrupted Rebuild does the same): the view
// the runner had may be of the old fold, so State and Read do not serve
// it and WaitFor waits for the rebuilt view.
func (r *Runner[S, E]) Rebuild(ctx context.Context) error {
	return r.run(ctx, true)
}

// remover is implemented by Checkpoints that can remove one checkpoint.
type remover interface {
	Remove(ctx context.Context, m snapshot.Meta) error
}

// dropCheckpoints removes every checkpoint of the projection (Rebuild's
// first step), if r.cps can.
func (r *Runner[S, E]) dropCheckpoints(ctx context.Context) error {
	rm, ok := r.cps.(remover)
	if !ok {
		if r.cps != nil {
			r.opts.Logger.Warn("evlog/projection: rebuilding without removing the old checkpoints (the checkpoint store cannot Remove)", "projection", r.p.Name)
		}
		return nil
	}
	name := r.subject().Name
	var old []snapshot.Meta
	for c, err := range r.cps.Candidates(name, math.MaxUint64) {
		if err != nil {
			return fmt.Errorf("evlog/projection: %s: listing the checkpoints to rebuild: %w", r.p.Name, err)
		}
		old = append(old, c.Meta)
	}
	r.rebuilding = true
	if len(old) > 0 {
		// Removing several files is not atomic: the marker, durable
		// first, makes a restart rebuild until the fresh checkpoint is
		// saved.
		if last := r.src.LastSeq(); last > 0 {
			m := snapshot.Meta{Name: r.markerName(), LogID: r.src.LogID(), Seq: last, Time: r.opts.Clock(), SchemaVersion: r.p.SchemaVersion}
			if _, err := r.cps.Save(ctx, m, nil); err != nil && !errors.Is(err, snapshot.ErrExists) {
				return fmt.Errorf("evlog/projection: %s: saving the rebuild marker: %w", r.p.Name, err)
			}
		}
	}
	for _, m := range old {
		if err := rm.Remove(ctx, m); err != nil && !errors.Is(err, snapshot.ErrNotFound) {
			return fmt.Errorf("evlog/projection: %s: removing checkpoint %s to rebuild: %w", r.p.Name, m.File, err)
		}
	}
	return nil
}

// replaceOtherFold is called when the checkpoint m cannot be saved because
// a checkpoint of the projection at m.Seq exists (one file per subject and
// seq: snapshot.FormatFileName). When that file is a checkpoint of another
// fold — another SchemaVersion, or another scope (replay.ScopeMismatch:
// Categories changed, or a scoped projection over a checkpoint that
// records no scope and is not trusted) — the current fold could never be
// checkpointed at that seq, and every restart would fold again from an
// older checkpoint or the first event until the log grows; it is then
// replaced (removed, durably, and m saved), but only if that loses
// nothing but work, now or later:
//
//   - its header reads (nothing is removed on the word of a file that
//     does not), and it is of this log (LogID);
//   - r.cps can Remove and r.src says which events expired
//     (replay.Expirations), and no event of any stream up to m.Seq reads
//     as gone other than by a deletion: the other fold's state is then
//     all in the log, and a reader of that fold (the projection with its
//     old Categories or SchemaVersion again, a tool folding it) that finds
//     the file gone, or replaced between listing and loading (Load checks
//     the whole Meta: a fallback, never the wrong state), folds it again
//     from an older checkpoint or the first event, to the same view;
//   - no event can expire later: r.src is a RetentionSource saying so
//     (*evlog.Log: the log records no retention). Otherwise an event up
//     to m.Seq that expired after the replacement (MaxAge as the clock
//     moves, MaxCount as its stream grows) would have had its effect
//     recorded only in the removed checkpoint, and the other fold, rolled
//     back to, would fold from an older checkpoint of its own (replay
//     reports the expired event after it: ErrExpiredUnfolded) or from the
//     first event, silently without that event's effect. This condition
//     is waived by RunnerOptions.ReplaceOtherFoldDespiteRetention, which
//     accepts that risk.
//
// The removal names the whole Meta read (snapshot.Store.Remove removes
// the file only if it still holds that checkpoint): a checkpoint another
// writer saved at the same seq meanwhile is never removed; the save then
// finds it and it is judged as above. Before removing it, the runner
// loads it (fully verified; one that does not load is kept), and after
// removing it, it asks both questions again (which events expired, and
// whether events can expire): events expire with no write to the log,
// and another process may record retention (a writer opened with
// Options.Retention), so one up to m.Seq may have expired, or become able
// to, between the first check and the removal, and the removed checkpoint
// be the only record of its effect. It is then saved back (the same Meta
// and state) and m is not saved.
//
// A checkpoint of another fold that may hold, or come to hold, the effect
// of expired events is kept (logged at Warn): the current fold is
// checkpointed once the log grows. Otherwise (a checkpoint of the same
// fold, or one passed over for another reason) it returns the ErrExists
// error, as before. Crashing between the removal and the save leaves
// neither at m.Seq: the next Run folds from an older checkpoint, as it
// would have anyway (and, if events up to m.Seq expired in that instant,
// the other fold's state up to m.Seq is lost; only possible with
// ReplaceOtherFoldDespiteRetention, or retention recorded in that
// instant).
//
// What this cannot guard: retention recorded later (a writer opened with
// Options.Retention after the replacement) can expire an event whose
// effect only the replaced checkpoint held. Take a backup before turning
// retention on if a rollback of a changed fold must keep that effect.
// The JetStream source (jetstream.Log) is neither a replay.Expirations
// nor a RetentionSource: the runner never replaces another fold's
// checkpoint there (as before).
func (r *Runner[S, E]) replaceOtherFold(ctx context.Context, m snapshot.Meta, b []byte) error {
	exists := fmt.Errorf("%w: a checkpoint at seq %d", snapshot.ErrExists, m.Seq)
	rm, canRemove := r.cps.(remover)
	x, canTell := r.src.(replay.Expirations)
	if !canRemove || !canTell {
		return exists
	}
	var old *snapshot.Meta
	for c, err := range r.cps.Candidates(m.Name, m.Seq) {
		if err != nil {
			return fmt.Errorf("evlog/projection: %s: reading the checkpoint in the way at seq %d: %w", r.p.Name, m.Seq, err)
		}
		if c.Unreadable == "" && c.Meta.Seq == m.Seq && c.Meta.Name == m.Name {
			old = &c.Meta
		}
		break
	}
	if old == nil || old.LogID != m.LogID {
		return exists
	}
	reason := ""
	if old.SchemaVersion != m.SchemaVersion {
		reason = fmt.Sprintf("schema version %d, the current one is %d", old.SchemaVersion, m.SchemaVersion)
	} else {
		var err error
		if reason, _, err = replay.ScopeMismatch(ctx, r.src, r.subject(), *old); err != nil {
			return err
		}
	}
	if reason == "" {
		return exists // the current fold's
	}
	why, err := r.mayExpire(ctx)
	if err != nil {
		return fmt.Errorf("evlog/projection: %s: reading whether the log's events expire: %w", r.p.Name, err)
	}
	if why != "" {
		r.opts.Logger.Warn("evlog/projection: not replacing a checkpoint of another fold at the seq of the view (an event it folded may expire later, and it would then be the only record of that event's effect); the view is checkpointed once the log grows",
			"projection", r.p.Name, "file", old.File, "seq", m.Seq, "reason", reason, "kept_because", why)
		return exists
	}
	everything := func(string) bool { return true }
	expired, found, err := x.FirstExpired(ctx, 1, m.Seq, everything)
	if err != nil {
		return fmt.Errorf("evlog/projection: %s: reading which events up to seq %d expired: %w", r.p.Name, m.Seq, err)
	}
	if found {
		r.opts.Logger.Warn("evlog/projection: not replacing a checkpoint of another fold at the seq of the view (it may hold the effect of expired events); the view is checkpointed once the log grows",
			"projection", r.p.Name, "file", old.File, "seq", m.Seq, "reason", reason, "expired_seq", expired)
		return exists
	}
	// Its state, verified, so that it can be saved back: events expire
	// without any write to the log (MaxAge, as the clock moves; MaxCount,
	// as other goroutines append), so some may expire between the check
	// above and the removal. One that does not load is kept. Load,
	// Remove, the check after it and the save are one step, run to
	// completion even if ctx ends meanwhile (a Run stopped right after
	// its save), bounded by StopTimeout.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.StopTimeout)
	defer cancel()
	state, err := r.cps.Load(cctx, *old)
	if err != nil {
		r.opts.Logger.Warn("evlog/projection: not replacing a checkpoint of another fold at the seq of the view (it does not load); the view is checkpointed once the log grows",
			"projection", r.p.Name, "file", old.File, "seq", m.Seq, "reason", reason, "err", err)
		return exists
	}
	r.opts.Logger.Info("evlog/projection: replacing a checkpoint of another fold at the seq of the view",
		"projection", r.p.Name, "file", old.File, "seq", m.Seq, "reason", reason)
	if err := rm.Remove(cctx, *old); errors.Is(err, snapshot.ErrNotFound) {
		// Gone or replaced meanwhile, not by this runner: nothing to
		// save back (a replacement is found by the save, ErrExists).
		_, err = r.cps.Save(cctx, m, b)
		return err
	} else if err != nil {
		return fmt.Errorf("removing the checkpoint of another fold (%s) in the way: %w", reason, err)
	}
	// Removed: the checks again. An event expired meanwhile, or the
	// log's events can expire now (retention recorded meanwhile): the
	// removed checkpoint may be, or become, the only record of an
	// event's effect, so it is saved back.
	expired, found, err = x.FirstExpired(cctx, 1, m.Seq, everything)
	if err == nil && !found {
		if why, err = r.mayExpire(cctx); err == nil && why == "" {
			_, err = r.cps.Save(cctx, m, b)
			return err
		}
	}
	back := *old
	back.RawSize, back.CompressedSize, back.File = 0, 0, ""
	if _, serr := r.cps.Save(cctx, back, state); serr != nil {
		return fmt.Errorf("evlog/projection: %s: removed the checkpoint of another fold (%s) at seq %d to replace it, then events up to it expired or may expire (%s; or that could not be read: %v), and saving it back failed: %w; that fold's state up to seq %d is lost unless a backup holds %s",
			r.p.Name, reason, m.Seq, why, err, serr, m.Seq, old.File)
	}
	r.opts.Logger.Warn("evlog/projection: saved back the checkpoint of another fold it was replacing (an event up to its seq expired meanwhile, the log's events can expire now, or that could not be read); the view is checkpointed once the log grows",
		"projection", r.p.Name, "file", old.File, "seq", m.Seq, "reason", reason, "expired_seq", expired, "kept_because", why, "err", err)
	return exists
}

// mayExpire returns why an event of r.src may expire later ("": it
// cannot, or RunnerOptions.ReplaceOtherFoldDespiteRetention is set):
// replaceOtherFold keeps the other fold's checkpoint then.
func (r *Runner[S, E]) mayExpire(ctx context.Context) (string, error) {
	if r.opts.ReplaceOtherFoldDespiteRetention {
		return "", nil
	}
	rs, ok := r.src.(RetentionSource)
	if !ok {
		return "the source cannot tell whether its events expire (it is no projection.RetentionSource)", nil
	}
	expires, err := rs.ExpiresEvents(ctx)
	if err != nil {
		return "", err
	}
	if expires {
		return "the log records retention: its events expire", nil
	}
	return "", nil
}

// markerName is the subject of the marker Rebuild saves while the old
// checkpoints are being replaced ("projection/" names never collide).
func (r *Runner[S, E]) markerName() string { return "projection-rebuild/" + r.p.Name }

// rebuildPending reports whether a Rebuild was interrupted before its
// view was checkpointed (its marker is there).
func (r *Runner[S, E]) rebuildPending() (bool, error) {
	if _, ok := r.cps.(remover); !ok {
		return false, nil
	}
	for _, err := range r.cps.Candidates(r.markerName(), math.MaxUint64) {
		if err != nil {
			return false, fmt.Errorf("evlog/projection: %s: looking for an interrupted rebuild: %w", r.p.Name, err)
		}
		return true, nil
	}
	return false, nil
}

// clearRebuildMarker removes Rebuild's marker once a checkpoint of the
// rebuilt view is saved.
func (r *Runner[S, E]) clearRebuildMarker(ctx context.Context) error {
	rm, ok := r.cps.(remover)
	if !ok {
		return nil
	}
	var markers []snapshot.Meta
	for c, err := range r.cps.Candidates(r.markerName(), math.MaxUint64) {
		if err != nil {
			return err
		}
		markers = append(markers, c.Meta)
	}
	for _, m := range markers {
		if err := rm.Remove(ctx, m); err != nil && !errors.Is(err, snapshot.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (r *Runner[S, E]) run(ctx context.Context, rebuild bool) (err error) {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.running.Store(false)
	r.mu.Lock()
	r.ended, r.endErr, r.endPanic = false, nil, false
	r.mu.Unlock()
	panicked := true // until runOnce returns
	defer func() {
		// Wake WaitFor: the view will not move until the next Run. (A
		// panicking Apply released mu: see fold.)
		r.mu.Lock()
		r.ended, r.endErr, r.endPanic = true, err, panicked
		if errors.Is(err, replay.ErrHistoryLost) {
			// The view (if any) is of the events before a deletion it
			// does not reflect: not served until Rebuild (see View).
			r.lost = err
			r.state, r.seq, r.time, r.unfolded = r.p.New(), 0, time.Time{}, snapshot.SeqRanges{}
		}
		r.notifyLocked()
		r.mu.Unlock()
	}()
	err = r.runOnce(ctx, rebuild)
	panicked = false
	return err
}

// runOnce is run's work, while the runner is marked running.
func (r *Runner[S, E]) runOnce(ctx context.Context, rebuild bool) error {
	r.rebuilding = false
	if !rebuild {
		pending, err := r.rebuildPending()
		if err != nil {
			return err
		}
		if pending {
			r.opts.Logger.Warn("evlog/projection: a Rebuild was interrupted; rebuilding", "projection", r.p.Name)
			rebuild = true
		}
	}
	if rebuild {
		// The view may come from a checkpoint of the old fold, which is
		// what a Rebuild replaces: it is not served (State, Read, WaitFor)
		// while the rebuild runs.
		r.mu.Lock()
		r.state, r.seq, r.time, r.unfolded = r.p.New(), 0, time.Time{}, snapshot.SeqRanges{}
		r.lost = nil // Rebuild is the way past it: WaitFor waits for the rebuilt view
		r.notifyLocked()
		r.mu.Unlock()
		if err := r.dropCheckpoints(ctx); err != nil {
			return err
		}
	}
	res, err := replay.State(ctx, r.src, r.cps, r.subject(), replay.Latest(), r.spec(), replay.Options{NoSnapshot: rebuild, Logger: r.opts.Logger})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.state, r.seq, r.time, r.plan, r.unfolded = res.State, res.Seq, res.Time, res.Plan, res.Unfolded
	r.lost = nil // a usable view again (the log was restored)
	r.notifyLocked()
	r.mu.Unlock()
	sinceCP, lastCP := res.Applied, time.Now()
	if rebuild && sinceCP == 0 {
		sinceCP = 1 // a rebuild replaces the old checkpoints even when nothing was folded
	}
	// checkpoint saves the view if due (or force); once ctx is done it
	// writes the final checkpoint instead and stop is set.
	checkpoint := func(force bool) (stop bool, err error) {
		if ctx.Err() == nil && (force || sinceCP >= r.opts.CheckpointEvery) {
			err := r.checkpoint(ctx)
			if err == nil {
				sinceCP, lastCP = 0, time.Now()
				return false, nil
			}
			if ctx.Err() == nil {
				return true, err
			}
			// Cancelled during the save: the final checkpoint below.
		}
		if ctx.Err() == nil {
			return false, nil
		}
		if sinceCP > 0 {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.StopTimeout)
			defer cancel()
			if cerr := r.checkpoint(fctx); cerr != nil {
				return true, errors.Join(ctx.Err(), cerr)
			}
		}
		return true, ctx.Err()
	}
	if sinceCP > 0 {
		if stop, err := checkpoint(true); stop {
			return err
		}
	}
	// Events folded and then none for CheckpointInterval are
	// checkpointed then: a timer (armed at the first event after a
	// checkpoint) ends the subscription, which starts again after the
	// checkpoint.
	// The replay covered the log up to its plan's ToSeq (events gone by
	// then were never folded, or failed it: replay.ErrExpiredUnfolded).
	next := max(res.Seq, res.Plan.ToSeq) + 1
	scope := r.subject().Scope
	for {
		sctx, idle := context.WithCancel(ctx)
		var timer *time.Timer
		arm := func() {
			if timer == nil && sinceCP > 0 {
				timer = time.AfterFunc(max(0, r.opts.CheckpointInterval-time.Since(lastCP)), idle)
			}
		}
		disarm := func() {
			if timer != nil {
				timer.Stop()
				timer = nil
			}
		}
		arm()
		var subErr, foldErr error
		for env, err := range r.src.Subscribe(sctx, next) {
			if err != nil {
				subErr = err
				break
			}
			if env.Seq > next {
				// A hole: events gone before the runner read them. One
				// of the scope that expired would be missing from the
				// view with no error.
				if foldErr = r.checkUnfolded(ctx, next, env.Seq-1); foldErr != nil {
					break
				}
			}
			if event.IsSystemStream(env.Stream) {
				// evlog's own events are not folded; a deletion marker
				// of a stream in the view's scope makes the view fold
				// again without the deleted events.
				foldErr = r.systemEvent(ctx, env) // deletion.go
			} else if !scope.Includes(env.Stream) {
				r.cover(env) // outside Categories
			} else if e, err := r.decode(env); err != nil {
				foldErr = fmt.Errorf("evlog/projection: %s: decoding event %d: %w", r.p.Name, env.Seq, err)
			} else {
				r.fold(e, env)
			}
			if foldErr != nil {
				break
			}
			next = env.Seq + 1
			if sinceCP++; sinceCP >= r.opts.CheckpointEvery {
				disarm() // saved now: the interval starts again
			}
			if stop, err := checkpoint(false); stop {
				disarm()
				idle()
				return err
			}
			arm()
		}
		disarm()
		idle()
		switch {
		case foldErr != nil:
			return foldErr
		case ctx.Err() != nil:
			_, err := checkpoint(false) // stopping: keep what was folded
			return err
		case sctx.Err() == nil && subErr != nil:
			return subErr
		case sctx.Err() == nil:
			// The source's subscription ended by itself.
			_, err := checkpoint(false)
			return err
		}
		// The interval passed with events not checkpointed.
		if stop, err := checkpoint(sinceCP > 0); stop {
			return err
		}
	}
}

// checkUnfolded returns a *replay.ExpiredUnfoldedError when an event of
// the view's scope with seq in [from, to] — a hole in what the
// subscription yielded after the view's seq — reads as gone by retention
// (r.src is replay.Expirations): it expired before the runner folded it
// (stopped or lagging). Events of other categories, and deleted ones (a
// marker follows, which folds the view again), do not count.
func (r *Runner[S, E]) checkUnfolded(ctx context.Context, from, to uint64) error {
	x, ok := r.src.(replay.Expirations)
	if !ok {
		return nil
	}
	subj := r.subject()
	exp, found, err := x.FirstExpired(ctx, from, to, subj.Includes)
	if err != nil {
		return fmt.Errorf("evlog/projection: %s: reading which events in seq %d..%d expired: %w", r.p.Name, from, to, err)
	}
	if !found {
		return nil
	}
	r.mu.RLock()
	seq := r.seq
	r.mu.RUnlock()
	return fmt.Errorf("evlog/projection: %s: %w", r.p.Name, &replay.ExpiredUnfoldedError{Subject: subj.Name, Seq: seq, ExpiredSeq: exp})
}

// fold folds one live event into the view. A panicking Apply releases the
// view and the panic goes on to Run's caller. Apply may have modified the
// view in place before it panicked, so the view is reset to the empty
// view at seq 0 (true, if stale) rather than kept as a half-folded view
// passing for the view at the seq before the event; the next Run starts
// over from a checkpoint.
func (r *Runner[S, E]) fold(e E, env event.Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	folded := false
	defer func() {
		if !folded {
			r.state, r.seq, r.time, r.unfolded = r.p.New(), 0, time.Time{}, snapshot.SeqRanges{}
			r.notifyLocked()
		}
	}()
	r.state = r.p.Apply(r.state, e)
	folded = true
	r.seq, r.time = env.Seq, env.Time
	r.notifyLocked()
}

// cover moves the view past an event it does not fold.
func (r *Runner[S, E]) cover(env event.Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq, r.time = env.Seq, env.Time
	r.notifyLocked()
}

func (r *Runner[S, E]) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// CheckpointFold is the fold of a checkpoint as the runner prunes them
// (its snapshot.PrunePolicy.Fold): its log, SchemaVersion and recorded
// scope. Checkpoints of another fold under the projection's Name (another
// SchemaVersion or Categories, run before or by another deployment) are
// judged on their own: the runner keeps the newest ones of each fold its
// retention keeps, never counts them as its own, and never removes the
// only checkpoint another fold could resume from. Tools that prune a
// projection's checkpoints (evlogctl snapshots --prune) use it too, so
// that they never remove what the runner keeps. It is a pure function of
// m's LogID, SchemaVersion and Scope; two Metas get the same key exactly
// when those three are equal.
func CheckpointFold(m snapshot.Meta) string {
	return fmt.Sprintf("%x/%d/%d", m.LogID, m.SchemaVersion, m.Scope)
}

// encodeView encodes the view for a checkpoint, with the seq it covers.
// The view's lock is released however the encoding ends: an encoder that
// panics (a view's MarshalMsgpack) must not leave it held, which would
// wedge Run's own deferred bookkeeping, the next fold and every WaitFor.
func (r *Runner[S, E]) encodeView() (replay.Result[S], []byte, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	res := replay.Result[S]{State: r.state, Seq: r.seq, Time: r.time, Unfolded: r.unfolded}
	b, err := replay.EncodeState(r.spec(), res.State)
	return res, b, err
}

// checkpoint saves the view with the seq it covers, in one atomic file.
func (r *Runner[S, E]) checkpoint(ctx context.Context) error {
	if r.cps == nil {
		return nil
	}
	res, b, err := r.encodeView()
	if err != nil {
		return fmt.Errorf("evlog/projection: %s: encoding the view: %w", r.p.Name, err)
	}
	if res.Seq == 0 {
		return nil
	}
	subj := r.subject()
	m := snapshot.Meta{Name: subj.Name, LogID: r.src.LogID(), Seq: res.Seq, Time: res.Time, SchemaVersion: subj.SchemaVersion, Scope: subj.Scope.Digest(), Unfolded: res.Unfolded}
	_, err = r.cps.Save(ctx, m, b)
	if errors.Is(err, snapshot.ErrExists) {
		err = r.replaceOtherFold(ctx, m, b)
	}
	if err != nil && !errors.Is(err, snapshot.ErrExists) {
		return fmt.Errorf("evlog/projection: %s: checkpoint at seq %d: %w", r.p.Name, res.Seq, err)
	}
	if r.rebuilding {
		// The rebuilt view is checkpointed: a restart may start from it.
		// This completes the checkpoint, even if ctx is done meanwhile
		// (the next Run would otherwise rebuild again).
		if err := r.clearRebuildMarker(context.WithoutCancel(ctx)); err != nil {
			r.opts.Logger.Warn("evlog/projection: removing the rebuild marker (the next Run rebuilds again)", "projection", r.p.Name, "err", err)
		} else {
			r.rebuilding = false
		}
	}
	p := r.opts.CheckpointRetention
	p.Now = r.opts.Clock()
	p.Fold = CheckpointFold
	// The prune completes the checkpoint, even if ctx is done meanwhile
	// (Run stopped right after the save): with ctx's, it would prune
	// nothing, and with nothing folded since, the final checkpoint would
	// not prune either. Bounded by StopTimeout, as the final checkpoint.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.StopTimeout)
	defer cancel()
	if _, err := r.cps.Prune(pctx, subj.Name, p); err != nil {
		r.opts.Logger.Warn("evlog/projection: pruning checkpoints", "projection", r.p.Name, "err", err)
	}
	return nil
}
