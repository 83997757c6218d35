package projection_test

import (
	"context"
	"errors"
	"iter"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
)

// typesCount counts events per type.
var typesCount = projection.Projection[map[string]int, event.Envelope]{
	Name:          "types",
	SchemaVersion: 1,
	Init:          func() map[string]int { return map[string]int{} },
	Apply: func(m map[string]int, e event.Envelope) map[string]int {
		m[e.Type]++
		return m
	},
}

var total = projection.Projection[int, event.Envelope]{
	Name:  "total",
	Apply: func(n int, _ event.Envelope) int { return n + 1 },
}

func events(types ...string) iter.Seq2[event.Envelope, error] {
	return func(yield func(event.Envelope, error) bool) {
		for i, t := range types {
			if t == "ERR" {
				yield(event.Envelope{}, errors.New("read failed"))
				return
			}
			if !yield(event.Envelope{Seq: uint64(i + 1), Type: t}, nil) {
				return
			}
		}
	}
}

func TestComputeIsPureAndStopsOnError(t *testing.T) {
	got, err := projection.Compute(typesCount, events("a", "b", "a"))
	if err != nil || !cmp.Equal(got, map[string]int{"a": 2, "b": 1}) {
		t.Fatalf("fold: %v %v", got, err)
	}
	if _, err := projection.Compute(typesCount, events("a", "ERR", "b")); err == nil {
		t.Fatal("a read error must end the fold with that error, not a shortened view")
	}
}

func TestFeedAllOnePass(t *testing.T) {
	passes := 0
	src := func(yield func(event.Envelope, error) bool) {
		passes++
		events("a", "b", "b")(yield)
	}
	a, b := projection.Start(typesCount), projection.Start(total)
	if err := projection.FeedAll(src, a, b); err != nil {
		t.Fatal(err)
	}
	if passes != 1 || b.State() != 3 || a.State()["b"] != 2 || a.Events() != 3 {
		t.Fatalf("passes %d, total %d, types %v", passes, b.State(), a.State())
	}
	if err := projection.FeedAll(events("a", "ERR"), a); err == nil {
		t.Fatal("FeedAll must stop with the read error")
	}
}

func openLog(t *testing.T, dir string) *evlog.Log {
	t.Helper()
	l, err := evlog.Open(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func appendN(t *testing.T, l *evlog.Log, typ string, n int) {
	t.Helper()
	for range n {
		if _, err := l.Append(t.Context(), "s", evlog.ExpectAny, event.Envelope{Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRunnerCheckpointsAndFollows: a runner catches up, follows live
// appends, checkpoints, resumes from its checkpoint, and rebuilds when its
// schema version changes.
func TestRunnerCheckpointsAndFollows(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	defer l.Close()
	appendN(t, l, "a", 30)
	snaps, _ := l.Snapshots()
	run := func(p projection.Projection[map[string]int, event.Envelope], extra func(r *projection.Runner[map[string]int, event.Envelope])) *projection.Runner[map[string]int, event.Envelope] {
		r := projection.NewRunner(p, l, snaps, func(e event.Envelope) (event.Envelope, error) { return e, nil }, projection.RunnerOptions{CheckpointEvery: 10})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		if err := projection.WaitGuarded(t, r, l.LastSeq(), "the log's last seq"); err != nil {
			t.Fatal(err)
		}
		extra(r)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run ended with %v", err)
		}
		return r
	}
	r := run(typesCount, func(r *projection.Runner[map[string]int, event.Envelope]) {
		appendN(t, l, "b", 25) // live
		if err := projection.WaitGuarded(t, r, 55, "the 25 live events"); err != nil {
			t.Fatal(err)
		}
		r.Read(func(m map[string]int, seq uint64) {
			if m["a"] != 30 || m["b"] != 25 || seq != 55 {
				t.Errorf("view %v at seq %d", m, seq)
			}
		})
	})
	if r.Plan().Snapshot != nil {
		t.Fatal("first run used a checkpoint")
	}
	// Restart: resumes from the checkpoint written when it stopped.
	appendN(t, l, "c", 5)
	r = run(typesCount, func(r *projection.Runner[map[string]int, event.Envelope]) {
		r.Read(func(m map[string]int, seq uint64) {
			if m["a"] != 30 || m["b"] != 25 || m["c"] != 5 || seq != 60 {
				t.Errorf("view after restart %v at seq %d", m, seq)
			}
		})
	})
	if p := r.Plan(); p.Snapshot == nil || p.Snapshot.Seq != 55 {
		t.Fatalf("restart did not resume from the checkpoint at 55: %+v", p)
	}
	// A new schema version: the old checkpoint is stale, the view rebuilt.
	v2 := typesCount
	v2.SchemaVersion = 2
	r = run(v2, func(r *projection.Runner[map[string]int, event.Envelope]) {
		r.Read(func(m map[string]int, seq uint64) {
			if m["a"] != 30 || m["c"] != 5 || seq != 60 {
				t.Errorf("rebuilt view %v at seq %d", m, seq)
			}
		})
	})
	if p := r.Plan(); p.Snapshot != nil || len(p.Fallbacks) == 0 {
		t.Fatalf("a schema change must rebuild from the first event (with the stale checkpoint reported): %+v", p)
	}
}
