package projection_test

import (
	"iter"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// TestRunnerScopeChangeFoldsTheNewScope: a runner restarted with other
// Categories (same SchemaVersion) must serve the fold of its new scope
// over the whole log, never a view resumed from a checkpoint folded over
// another set of events (which used to be served silently: neither the
// old fold nor the new one).
func TestRunnerScopeChangeFoldsTheNewScope(t *testing.T) {
	streams := []string{"a-1", "b-1", "a-2", "c-1", "b-2"}
	for _, tc := range []struct {
		name          string
		before, after []string
	}{
		{"widened", []string{"a"}, []string{"a", "b"}},
		{"narrowed", []string{"a", "b"}, []string{"a"}},
		{"other", []string{"a"}, []string{"b"}},
		{"unscoped", []string{"a"}, nil},
		{"scoped", nil, []string{"a"}},
		{"reordered", []string{"b", "a"}, []string{"a", "b", "a"}}, // the same scope: keeps its checkpoint
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openLog(t, t.TempDir())
			defer l.Close()
			last := appendTo(t, l, streams...)
			snaps, err := l.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
			count := func(cats []string) projection.Projection[map[string]int, event.Envelope] {
				p := acctCount
				p.Name, p.Categories = "count", cats
				return p
			}
			runUntilCaughtUp(t, projection.NewRunner(count(tc.before), l, snaps, decode, projection.RunnerOptions{}), last, false)

			p := count(tc.after)
			r := projection.NewRunner(p, l, snaps, decode, projection.RunnerOptions{})
			runUntilCaughtUp(t, r, last, false)
			want, err := projection.Compute(p, scoped(t, l, p.Categories))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := r.State()
			plan := r.Plan()
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("view with Categories %q after a checkpoint of Categories %q (-fold of the new scope +served):\n%s\nplan: checkpoint %v, fallbacks %+v",
					tc.after, tc.before, diff, plan.Snapshot, plan.Fallbacks)
			}
			sameScope := tc.name == "reordered"
			if used := plan.Snapshot != nil; used != sameScope {
				t.Errorf("runner started from checkpoint %v (fallbacks %+v); want one: %v", plan.Snapshot, plan.Fallbacks, sameScope)
			}
		})
	}
}

// scoped returns the events of l's user streams in the scope of cats
// (nil: every stream).
func scoped(t *testing.T, l *evlog.Log, cats []string) iter.Seq2[event.Envelope, error] {
	return func(yield func(event.Envelope, error) bool) {
		scope := replay.Scope{Categories: cats}
		for e, err := range l.Range(t.Context(), 1, l.LastSeq()) {
			if err == nil && !scope.Includes(e.Stream) {
				continue
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// TestRunnerUnrecordedScopeCheckpoint: a checkpoint that records no scope
// (saved by an older evlog) is trusted by an unscoped projection, as
// before; a projection with Categories passes over it (it may be of other
// Categories), unless events it folded have expired since, when folding
// again would lose them: then it is trusted, as before.
func TestRunnerUnrecordedScopeCheckpoint(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cats     []string
		expire   bool
		wantUsed bool
	}{
		{"unscoped", nil, false, true},
		{"scoped", []string{"acct"}, false, false},
		{"scoped, its events expired", []string{"acct"}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, expire := expiringLog(t)
			last := appendTo(t, l, "acct-1", "other-1", "acct-1")
			snaps, err := l.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			// The checkpoint an older evlog saved: a view of another
			// fold than the current one, so that using it shows.
			old := map[string]int{"old": 1}
			b, err := msgpack.Marshal(old)
			if err != nil {
				t.Fatal(err)
			}
			var at time.Time
			for e, err := range l.Range(t.Context(), last, last) {
				if err != nil {
					t.Fatal(err)
				}
				at = e.Time
			}
			if _, err := snaps.Save(t.Context(), snapshot.Meta{Name: "projection/count", LogID: l.LogID(), Seq: last, Time: at, SchemaVersion: 1}, b); err != nil {
				t.Fatal(err)
			}
			if tc.expire {
				expire()
			}
			p := acctCount
			p.Name, p.Categories = "count", tc.cats
			r := projection.NewRunner(p, l, snaps, func(e event.Envelope) (event.Envelope, error) { return e, nil }, projection.RunnerOptions{})
			runUntilCaughtUp(t, r, last, false)
			plan := r.Plan()
			if used := plan.Snapshot != nil; used != tc.wantUsed {
				t.Fatalf("runner started from checkpoint %v (fallbacks %+v); want one: %v", plan.Snapshot, plan.Fallbacks, tc.wantUsed)
			}
			want := old
			if !tc.wantUsed {
				want = map[string]int{"acct-1": 2}
			}
			if got, _ := r.State(); !cmp.Equal(want, got) {
				t.Errorf("view %v, want %v", got, want)
			}
		})
	}
}

// TestRunnerCheckpointsOverOtherFoldAtTheSameSeq: after a change of
// Categories (or SchemaVersion), the runner folds the new scope from the
// first event, but the checkpoint of the old fold at the seq the log ends
// at used to take the file name of the new checkpoint (one file per
// subject and seq): the new one was never saved (Save's ErrExists was
// taken for "already checkpointed"), and every restart folded the whole
// log again until the log grew. A checkpoint of another fold that holds
// nothing the log cannot give again (no event up to its seq has expired)
// is now replaced by the current fold's on a log whose events cannot
// expire (no retention), or with RunnerOptions.ReplaceOtherFoldDespiteRetention;
// one on a log with retention, or that may hold the effect of expired
// events, is kept (only work is lost; see
// TestRunnerKeepsOtherFoldCheckpointOnLogWithRetention).
func TestRunnerCheckpointsOverOtherFoldAtTheSameSeq(t *testing.T) {
	for _, tc := range []struct {
		name string
		// old is the projection whose checkpoint is at the end of the
		// log (nil: one that records no scope, as an older evlog saved).
		old, cur func(p projection.Projection[map[string]int, event.Envelope]) projection.Projection[map[string]int, event.Envelope]
		expire   bool // events up to the old checkpoint expired
		replaced bool
	}{
		{name: "widened categories", replaced: true,
			old: func(p projection.Projection[map[string]int, event.Envelope]) projection.Projection[map[string]int, event.Envelope] {
				p.Categories = []string{"acct"}
				return p
			},
			cur: func(p projection.Projection[map[string]int, event.Envelope]) projection.Projection[map[string]int, event.Envelope] {
				p.Categories = []string{"acct", "other"}
				return p
			}},
		{name: "new schema version", replaced: true,
			old: func(p projection.Projection[map[string]int, event.Envelope]) projection.Projection[map[string]int, event.Envelope] {
				return p
			},
			cur: func(p projection.Projection[map[string]int, event.Envelope]) projection.Projection[map[string]int, event.Envelope] {
				p.SchemaVersion++
				return p
			}},
		{name: "scoped, over a checkpoint that records no scope", replaced: true,
			cur: func(p projection.Projection[map[string]int, event.Envelope]) projection.Projection[map[string]int, event.Envelope] {
				return p
			}},
		{name: "other categories, events expired", expire: true, replaced: false,
			old: func(p projection.Projection[map[string]int, event.Envelope]) projection.Projection[map[string]int, event.Envelope] {
				p.Categories = []string{"acct", "other"}
				return p
			},
			cur: func(p projection.Projection[map[string]int, event.Envelope]) projection.Projection[map[string]int, event.Envelope] {
				p.Categories = []string{"other"}
				return p
			}},
	} {
		for _, lc := range []struct {
			name      string
			retention bool // category acct keeps its events for an hour
			optIn     bool // RunnerOptions.ReplaceOtherFoldDespiteRetention
		}{
			{name: "no retention"},
			{name: "retention", retention: true},
			{name: "retention, replacing despite it", retention: true, optIn: true},
		} {
			if tc.expire && !lc.retention {
				continue // nothing expires
			}
			// On a log with retention an event the old fold's checkpoint
			// folded may expire later: only the opt-in replaces it.
			replaced := tc.replaced && (!lc.retention || lc.optIn)
			t.Run(tc.name+"/"+lc.name, func(t *testing.T) {
				checkpointsOverOtherFold(t, otherFoldCase{old: tc.old, cur: tc.cur, retention: lc.retention, optIn: lc.optIn, expire: tc.expire, replaced: replaced})
			})
		}
	}
}

// otherFoldCase is one case of TestRunnerCheckpointsOverOtherFoldAtTheSameSeq.
type otherFoldCase struct {
	// old is the projection whose checkpoint is at the end of the log
	// (nil: one that records no scope, as an older evlog saved).
	old, cur  func(p projection.Projection[map[string]int, event.Envelope]) projection.Projection[map[string]int, event.Envelope]
	retention bool // category acct keeps its events for an hour
	optIn     bool // RunnerOptions.ReplaceOtherFoldDespiteRetention
	expire    bool // events up to the old checkpoint expired
	replaced  bool
}

func checkpointsOverOtherFold(t *testing.T, c otherFoldCase) {
	t.Helper()
	var l *evlog.Log
	var expire func()
	if c.retention {
		l, expire = expiringLog(t)
	} else {
		l = openLog(t, t.TempDir())
		t.Cleanup(func() { l.Close() })
	}
	last := appendTo(t, l, "acct-1", "other-1", "acct-2", "other-2")
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
	var folds int
	base := acctCount
	base.Name = "count"
	base.Apply = func(m map[string]int, e event.Envelope) map[string]int {
		folds++ // only the runner's goroutine folds
		m[e.Stream]++
		return m
	}
	if c.old != nil {
		runUntilCaughtUp(t, projection.NewRunner(c.old(base), l, store, decode, projection.RunnerOptions{}), last, false)
	} else {
		b, err := msgpack.Marshal(map[string]int{"old": 1})
		if err != nil {
			t.Fatal(err)
		}
		var at time.Time
		for e, err := range l.Range(t.Context(), last, last) {
			if err != nil {
				t.Fatal(err)
			}
			at = e.Time
		}
		if _, err := store.Save(t.Context(), snapshot.Meta{Name: "projection/count", LogID: l.LogID(), Seq: last, Time: at, SchemaVersion: base.SchemaVersion}, b); err != nil {
			t.Fatal(err)
		}
	}
	old, err := store.List("projection/count")
	if err != nil || len(old) != 1 || old[0].Seq != last {
		t.Fatalf("the old fold's checkpoints: %v, %v; want one at seq %d", old, err, last)
	}
	if c.expire {
		expire()
	}
	p := c.cur(base)
	want, err := projection.Compute(p, scoped(t, l, p.Categories))
	if err != nil {
		t.Fatal(err)
	}
	for restart := range 2 {
		folds = 0
		r := projection.NewRunner(p, l, store, decode, projection.RunnerOptions{ReplaceOtherFoldDespiteRetention: c.optIn})
		runUntilCaughtUp(t, r, last, false)
		if got, _ := r.State(); !cmp.Equal(want, got) {
			t.Errorf("restart %d: view %v, want %v", restart, got, want)
		}
		wantFolds := len(want)
		for _, n := range want {
			wantFolds += n - 1
		}
		if restart == 1 && c.replaced {
			wantFolds = 0 // from the checkpoint of the first restart
		}
		if folds != wantFolds {
			plan := r.Plan()
			t.Errorf("restart %d folded %d events, want %d (plan: checkpoint %v, fallbacks %+v)", restart, folds, wantFolds, plan.Snapshot, plan.Fallbacks)
		}
	}
	cps, err := store.List("projection/count")
	if err != nil || len(cps) != 1 {
		t.Fatalf("checkpoints: %v, %v; want one", cps, err)
	}
	if kept := cmp.Equal(old[0], cps[0]); kept == c.replaced {
		t.Errorf("checkpoint at seq %d: %+v, the old fold's was %+v; want it replaced: %v", last, cps[0], old[0], c.replaced)
	}
}
