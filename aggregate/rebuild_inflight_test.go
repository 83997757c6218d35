package aggregate_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/snapshot"
)

// signalOn is a slog handler that closes seen when a record with message
// msg arrives (the others are dropped).
type signalOn struct {
	msg  string
	seen chan struct{}
	once sync.Once
}

func (s *signalOn) Enabled(context.Context, slog.Level) bool { return true }
func (s *signalOn) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message == s.msg {
		s.once.Do(func() { close(s.seen) })
	}
	return nil
}
func (s *signalOn) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *signalOn) WithGroup(string) slog.Handler      { return s }

// removableSaves is blockingSaves over a store that can remove a
// snapshot, as Rebuild needs.
type removableSaves struct {
	*blockingSaves
	store *snapshot.Store
}

func (s removableSaves) Remove(ctx context.Context, m snapshot.Meta) error {
	return s.store.Remove(ctx, m)
}

// TestRepositoryRebuildOutlivesBackgroundSnapshot: a background snapshot
// taken before a deletion and still being saved when Rebuild runs must
// not be left behind by Rebuild: it holds deleted data (and the effect of
// expired events), so a Load after it would report ErrHistoryLost again,
// which Rebuild promises never happens. Instance a: versions 1..3
// snapshotted at seq 3, expired; version 4 (seq 4) appended with a
// background snapshot due, whose Save is held; then a truncation of
// version 1; Rebuild; the Save is released only once Rebuild waits for
// it (or has returned, as it used to). With pending, version 5 is
// appended while the Save is held, so that a second snapshot (seq 5, as
// stale) waits for the worker when Rebuild runs.
func TestRepositoryRebuildOutlivesBackgroundSnapshot(t *testing.T) {
	for _, pending := range []bool{false, true} {
		t.Run(fmt.Sprintf("pending=%v", pending), func(t *testing.T) { testRebuildOutlivesBackgroundSnapshot(t, pending) })
	}
}

func testRebuildOutlivesBackgroundSnapshot(t *testing.T, pending bool) {
	ctx := t.Context()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var now atomic.Int64
	now.Store(t0.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	l, err := evlog.Open(t.TempDir(), evlog.Options{Clock: clock, Retention: map[string]evlog.Retention{"counter": {MaxAge: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	codec := aggregate.Codec[evlog.Event[inc]](evlog.NewCodec[inc](nil))

	r0 := aggregate.NewRepository(l, store, counterDef, codec, aggregate.Options{})
	for i, key := range []string{"a", "b", "c"} {
		if _, err := r0.Execute(ctx, "a", add(key, 1<<i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r0.Snapshot(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	r0.Close()
	now.Store(t0.Add(2 * time.Hour).UnixNano())

	held := removableSaves{&blockingSaves{Snapshots: store, started: make(chan struct{}), release: make(chan struct{})}, store}
	waiting := &signalOn{msg: "evlog/aggregate: rebuilding: waiting for a snapshot in flight", seen: make(chan struct{})}
	r := aggregate.NewRepository(l, held, counterDef, codec, aggregate.Options{SnapshotEvery: 1, Logger: slog.New(waiting)})
	defer r.Close()
	if _, err := r.Execute(ctx, "a", add("d", 8)); err != nil { // from the snapshot at 3
		t.Fatal(err)
	}
	<-held.started // the worker holds the snapshot at seq 4
	want := counterGot{N: map[string]int{"d": 8}, Version: 4}
	if pending {
		if _, err := r.Execute(ctx, "a", add("e", 16)); err != nil {
			t.Fatal(err)
		}
		want = counterGot{N: map[string]int{"d": 8, "e": 16}, Version: 5}
	}
	if _, err := l.TruncateStream(ctx, "counter-a", 2); err != nil {
		t.Fatal(err)
	}

	type rebuilt struct {
		got counterGot
		err error
	}
	done := make(chan rebuilt, 1)
	go func() {
		inst, err := r.Rebuild(ctx, "a")
		done <- rebuilt{counterGot{inst.State.N, inst.Version}, err}
	}()
	var res rebuilt
	select {
	case <-waiting.seen:
		close(held.release)
		res = <-done
	case res = <-done:
		close(held.release)
	}
	if res.err != nil {
		t.Fatalf("Rebuild: %v", res.err)
	}
	if diff := cmp.Diff(want, res.got); diff != "" {
		t.Errorf("Rebuild's instance (-want +got):\n%s", diff)
	}
	r.Close() // the held snapshot is saved (or dropped) by now

	r2 := aggregate.NewRepository(l, store, counterDef, codec, aggregate.Options{})
	defer r2.Close()
	got, err := r2.Load(ctx, "a")
	if err != nil {
		t.Fatalf("Load after Rebuild and the background snapshot it overlapped: %v (seqs of the instance's snapshots: %v)", err, snapshotSeqs(t, l, r2))
	}
	if diff := cmp.Diff(want, counterGot{got.State.N, got.Version}); diff != "" {
		t.Errorf("Load after Rebuild (-want +got):\n%s", diff)
	}
}
