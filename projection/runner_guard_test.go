package projection

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
)

var guardCount = Projection[map[string]int, event.Envelope]{
	Name:          "guard",
	SchemaVersion: 1,
	Init:          func() map[string]int { return map[string]int{} },
	Apply: func(m map[string]int, e event.Envelope) map[string]int {
		if e.Type == "boom" {
			m["half"]++ // in place, then the fold fails
			panic("fold failed")
		}
		m[e.Type]++
		return m
	},
}

func rawEnv(e event.Envelope) (event.Envelope, error) { return e, nil }

func guardLog(t *testing.T) *evlog.Log {
	t.Helper()
	l, err := evlog.Open(t.TempDir(), evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func guardAppend(t *testing.T, l *evlog.Log, types ...string) {
	t.Helper()
	for _, typ := range types {
		if _, err := l.Append(t.Context(), "s", evlog.ExpectAny, event.Envelope{Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRunnerRefusesSecondRun: Run or Rebuild on a runner that is running
// fails with ErrRunning and changes nothing; both used to go ahead, the
// second replacing the view and then folding every live event into it a
// second time (and Rebuild removing the running view's checkpoints).
func TestRunnerRefusesSecondRun(t *testing.T) {
	l := guardLog(t)
	guardAppend(t, l, "a", "a", "a")
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	r := NewRunner(guardCount, l, snaps, rawEnv, RunnerOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	if err := WaitGuarded(t, r, 3, "the 3 appended events"); err != nil {
		t.Fatal(err)
	}
	// Contexts already done: the old code returned at its first step
	// instead of running on.
	dead, kill := context.WithCancel(t.Context())
	kill()
	if err := r.Rebuild(dead); !errors.Is(err, ErrRunning) {
		t.Errorf("Rebuild while running: %v, want ErrRunning", err)
	}
	if err := r.Run(dead); !errors.Is(err, ErrRunning) {
		t.Errorf("Run while running: %v, want ErrRunning", err)
	}
	guardAppend(t, l, "a")
	if err := WaitGuarded(t, r, 4, "the event appended while running"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	if m, seq := r.State(); m["a"] != 4 || seq != 4 {
		t.Errorf("view %v at seq %d, want a:4 at 4", m, seq)
	}
	// Stopped, it runs again.
	ctx, cancel = context.WithCancel(t.Context())
	go func() { done <- r.Run(ctx) }()
	if err := WaitGuarded(t, r, 4, "the 4 events, after the restart"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("second Run: %v", err)
	}
}

// TestRunnerFoldPanicReleasesView: a fold that panics while the runner
// follows the log panics in Run's caller, and leaves the runner usable: a
// caller that recovers (a supervisor restarting it) can read the view and
// run it again. The view's lock used to stay held, so State, Read,
// WaitFor and the next Run hung forever.
func TestRunnerFoldPanicReleasesView(t *testing.T) {
	l := guardLog(t)
	guardAppend(t, l, "a")
	r := NewRunner(guardCount, l, nil, rawEnv, RunnerOptions{})
	recovered := make(chan any, 1)
	go func() {
		defer func() { recovered <- recover() }()
		_ = r.Run(t.Context())
	}()
	if err := WaitGuarded(t, r, 1, "the first event"); err != nil {
		t.Fatal(err)
	}
	guardAppend(t, l, "boom")
	if v := <-recovered; v != "fold failed" {
		t.Fatalf("recovered %v, want the fold's panic", v)
	}
	if !r.mu.TryLock() {
		t.Fatal("the view's lock is still held after the fold panicked")
	}
	r.mu.Unlock()
	if r.running.Load() {
		t.Fatal("the runner still counts as running after the fold panicked")
	}
}

// TestRunnerFoldPanicLeavesNoHalfFoldedView: once Apply has panicked while
// the runner followed the log (and modified the view in place first, as
// Apply may), State, Read and WaitFor must not serve that half-folded view
// as the view at the seq before the event: the view a reader gets must be
// the fold of the events up to the seq it is given with. The runner used
// to keep the half-folded view with the old seq, and WaitFor(that seq)
// answered at once.
func TestRunnerFoldPanicLeavesNoHalfFoldedView(t *testing.T) {
	l := guardLog(t)
	guardAppend(t, l, "a")
	r := NewRunner(guardCount, l, nil, rawEnv, RunnerOptions{})
	recovered := make(chan any, 1)
	go func() {
		defer func() { recovered <- recover() }()
		_ = r.Run(t.Context())
	}()
	if err := WaitGuarded(t, r, 1, "the first event"); err != nil {
		t.Fatal(err)
	}
	guardAppend(t, l, "boom")
	if v := <-recovered; v != "fold failed" {
		t.Fatalf("recovered %v, want the fold's panic", v)
	}
	consistent := func(how string, view map[string]int, seq uint64) {
		t.Helper()
		want, err := Compute(guardCount, l.Range(t.Context(), 1, seq))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, view); diff != "" {
			t.Errorf("%s after the fold panicked: the view at seq %d is not the fold of the events up to it (-want +got):\n%s", how, seq, diff)
		}
	}
	view, seq := r.State()
	consistent("State", view, seq)
	r.Read(func(view map[string]int, seq uint64) { consistent("Read", view, seq) })
	if err := WaitGuarded(t, r, 1, "the first event (or the runner's end, after the fold panicked)"); err == nil {
		view, seq := r.State()
		consistent("WaitFor(1) returned nil; State", view, seq)
	} else if !errors.Is(err, ErrStopped) {
		t.Errorf("WaitFor(1) after the fold panicked: %v, want nil or ErrStopped", err)
	}
}

// badView is a view whose msgpack encoding panics (a bug in an
// application's MarshalMsgpack), met when the runner checkpoints it.
type badView struct{ N int }

func (badView) MarshalMsgpack() ([]byte, error) { panic("encoding failed") }

var badEncoding = Projection[badView, event.Envelope]{
	Name:          "bad-encoding",
	SchemaVersion: 1,
	Apply:         func(v badView, _ event.Envelope) badView { v.N++; return v },
}

// TestRunnerCheckpointPanicReleasesView: a view whose encoding panics
// while the runner checkpoints it panics in Run's caller and leaves the
// view's lock free. The lock used to stay read-locked: Run's own deferred
// bookkeeping then waited for it for ever (the panic never reached the
// caller, Run never returned), as did the next fold, Run and WaitFor.
func TestRunnerCheckpointPanicReleasesView(t *testing.T) {
	l := guardLog(t)
	guardAppend(t, l, "a")
	r := NewRunner(badEncoding, l, &savedCheckpoints{}, rawEnv, RunnerOptions{})
	r.state, r.seq = badView{N: 1}, 1
	func() {
		defer func() {
			if v := recover(); v != "encoding failed" {
				t.Errorf("checkpoint: recovered %v, want the encoder's panic", v)
			}
		}()
		_ = r.checkpoint(t.Context())
	}()
	if !r.mu.TryLock() {
		t.Fatal("the view's lock is still held after encoding the view for a checkpoint panicked")
	}
	r.mu.Unlock()

	// Through Run: the panic reaches its caller, and the runner is free.
	r = NewRunner(badEncoding, l, &savedCheckpoints{}, rawEnv, RunnerOptions{})
	recovered := make(chan any, 1)
	go func() {
		defer func() { recovered <- recover() }()
		_ = r.Run(t.Context())
	}()
	if v := <-recovered; v != "encoding failed" {
		t.Fatalf("Run: recovered %v, want the encoder's panic", v)
	}
	if err := WaitGuarded(t, r, 2, "the runner's end, after the encoder panicked"); !errors.Is(err, ErrStopped) {
		t.Fatalf("WaitFor after Run panicked: %v, want ErrStopped", err)
	}
}
