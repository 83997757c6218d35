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
