package aggregate_test

import (
	"context"
	"iter"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/event"
)

// hookLog is a *evlog.Log whose Append and Stream first run a hook, once
// (armed by the test): a deterministic way to put another writer's append
// or deletion between a repository's steps.
type hookLog struct {
	*evlog.Log
	mu           sync.Mutex
	beforeAppend func()
	beforeStream func()
}

func (h *hookLog) take(f *func()) func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := *f
	*f = nil
	return g
}

func (h *hookLog) Append(ctx context.Context, stream string, expect event.Expectation, events ...event.Envelope) (event.Position, error) {
	if f := h.take(&h.beforeAppend); f != nil {
		f()
	}
	return h.Log.Append(ctx, stream, expect, events...)
}

func (h *hookLog) Stream(ctx context.Context, stream string, from uint64) iter.Seq2[event.Envelope, error] {
	if f := h.take(&h.beforeStream); f != nil {
		f()
	}
	return h.Log.Stream(ctx, stream, from)
}

func newHookRepo(t *testing.T, opts aggregate.Options) (*hookLog, func() *aggregate.Repository[counter, evlog.Event[inc]]) {
	t.Helper()
	l, err := evlog.Open(t.TempDir(), evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	h := &hookLog{Log: l}
	return h, func() *aggregate.Repository[counter, evlog.Event[inc]] {
		r := aggregate.NewRepository(aggregate.Log(h), snaps, counterDef, aggregate.Codec[evlog.Event[inc]](evlog.NewCodec[inc](nil)), opts)
		t.Cleanup(func() { r.Close() })
		return r
	}
}

type counted struct{ X, Version int }

func loadCounted(t *testing.T, r *aggregate.Repository[counter, evlog.Event[inc]]) counted {
	t.Helper()
	inst, err := r.Load(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	return counted{inst.State.N["x"], int(inst.Version)}
}

// TestExecuteBesideDeletion: a stream soft-deleted between a command's
// load and its append (which still succeeds: ExpectVersion(v) works after
// DeleteStream) must not leave the repository's cache or its snapshot
// holding the deleted events' effect at a seq past the deletion, where
// neither the cache check nor replay's planning would pass over it.
func TestExecuteBesideDeletion(t *testing.T) {
	ctx := t.Context()
	h, repo := newHookRepo(t, aggregate.Options{SnapshotEvery: 1})
	r := repo()
	for range 3 {
		if _, err := r.Execute(ctx, "a", add("x", 1)); err != nil {
			t.Fatal(err)
		}
	}
	h.beforeAppend = func() {
		if _, _, err := h.DeleteStream(ctx, "counter-a"); err != nil {
			t.Error(err)
		}
	}
	if _, err := r.Execute(ctx, "a", add("x", 1)); err != nil {
		t.Fatal(err)
	}
	want := counted{1, 4} // only version 4 is left
	if diff := cmp.Diff(want, loadCounted(t, r)); diff != "" {
		t.Errorf("cached repository (-want +got):\n%s", diff)
	}
	r.Close() // its snapshots are written
	if diff := cmp.Diff(want, loadCounted(t, repo())); diff != "" {
		t.Errorf("new repository, from the snapshots (-want +got):\n%s", diff)
	}
}

// TestLoadBesideDeletion: a stream truncated, and appended to, after Load
// found its cached state fresh but before it read the events after it
// must not leave the cache holding the truncated events' effect at a seq
// past the truncation.
func TestLoadBesideDeletion(t *testing.T) {
	ctx := t.Context()
	h, repo := newHookRepo(t, aggregate.Options{})
	r := repo()
	for range 3 {
		if _, err := r.Execute(ctx, "a", add("x", 1)); err != nil {
			t.Fatal(err)
		}
	}
	h.beforeStream = func() {
		if _, err := h.TruncateStream(ctx, "counter-a", 3); err != nil {
			t.Error(err)
		}
		if _, err := evlog.Typed[inc](h.Log).Append(ctx, "counter-a", evlog.ExpectVersion(3), evlog.Event[inc]{Type: "inc", Data: inc{"x", 1}}); err != nil {
			t.Error(err)
		}
	}
	want := counted{2, 4} // versions 3 and 4
	if diff := cmp.Diff(want, loadCounted(t, r)); diff != "" {
		t.Errorf("first load (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, loadCounted(t, r)); diff != "" {
		t.Errorf("second load (-want +got):\n%s", diff)
	}
}
