package aggregate_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// counter is a test aggregate: a map of named counters.
type counter struct {
	N    map[string]int `msgpack:"n"`
	Adds int            `msgpack:"adds"`
}

type inc struct {
	Key string `msgpack:"key"`
	By  int    `msgpack:"by"`
}

var counterDef = aggregate.Definition[counter, evlog.Event[inc]]{
	Category:      "counter",
	SchemaVersion: 1,
	Init:          func() counter { return counter{N: map[string]int{}} },
	Apply: func(c counter, e evlog.Event[inc]) counter {
		c.N[e.Data.Key] += e.Data.By
		c.Adds++
		return c
	},
	Clone: func(c counter) counter {
		n := make(map[string]int, len(c.N))
		for k, v := range c.N {
			n[k] = v
		}
		return counter{N: n, Adds: c.Adds}
	},
}

func add(key string, by int) aggregate.Command[counter, evlog.Event[inc]] {
	return func(c counter) ([]evlog.Event[inc], error) {
		if by < 0 && c.N[key]+by < 0 {
			return nil, errors.New("would go negative")
		}
		return []evlog.Event[inc]{{Type: "inc", Data: inc{key, by}}}, nil
	}
}

func newRepo(t testing.TB, opts aggregate.Options, logOpts evlog.Options) (*evlog.Log, *aggregate.Repository[counter, evlog.Event[inc]]) {
	t.Helper()
	l, err := evlog.Open(t.TempDir(), logOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	r := aggregate.NewRepository(l, snaps, counterDef, aggregate.Codec[evlog.Event[inc]](evlog.NewCodec[inc](nil)), opts)
	t.Cleanup(func() { r.Close() })
	return l, r
}

// TestDefinitionIsPure: the definition works with no log at all.
func TestDefinitionIsPure(t *testing.T) {
	s := counterDef.ApplyAll(counterDef.New(), evlog.Event[inc]{Data: inc{"a", 2}}, evlog.Event[inc]{Data: inc{"a", 3}})
	if s.N["a"] != 5 || s.Adds != 2 {
		t.Fatalf("fold: %+v", s)
	}
	evs, err := add("a", -9)(s)
	if err == nil || evs != nil {
		t.Fatalf("command should refuse: %v %v", evs, err)
	}
}

func TestExecuteLoadAndRejectedCommand(t *testing.T) {
	ctx := t.Context()
	l, r := newRepo(t, aggregate.Options{}, evlog.Options{})
	for i := range 5 {
		res, err := r.Execute(ctx, "c1", add("x", i))
		if err != nil {
			t.Fatal(err)
		}
		if res.Version != uint64(i+1) || res.Attempts != 1 || len(res.Events) != 1 {
			t.Fatalf("execute %d: %+v", i, res)
		}
	}
	last := l.LastSeq()
	if _, err := r.Execute(ctx, "c1", add("x", -100)); err == nil {
		t.Fatal("a rejected command must return its error")
	}
	if l.LastSeq() != last {
		t.Fatal("a rejected command appended events")
	}
	in, err := r.Load(ctx, "c1")
	if err != nil || in.State.N["x"] != 10 || in.Version != 5 || in.Time.IsZero() {
		t.Fatalf("load: %+v %v", in, err)
	}
	// Another writer appends to the stream directly: the cached state is
	// advanced by that event, not rebuilt.
	ev, _ := evlog.Encode(evlog.Event[inc]{Type: "inc", Data: inc{"y", 1}})
	if _, err := l.Append(ctx, "counter-c1", evlog.ExpectVersion(5), ev); err != nil {
		t.Fatal(err)
	}
	in, err = r.Load(ctx, "c1")
	if err != nil || in.State.N["y"] != 1 || in.Version != 6 {
		t.Fatalf("load after an outside append: %+v %v", in, err)
	}
}

// TestConcurrentCommandsNoLostUpdate: many goroutines run commands on the
// same and on different aggregates; conflicts are retried and no update
// is lost.
func TestConcurrentCommandsNoLostUpdate(t *testing.T) {
	ctx := t.Context()
	l, r1 := newRepo(t, aggregate.Options{MaxAttempts: 1000, CacheSize: 4}, evlog.Options{Sync: evlog.SyncNever})
	// A second repository over the same log stands for another process:
	// its commands race the first's and conflicts are retried.
	snaps, _ := l.Snapshots()
	r2 := aggregate.NewRepository(l, snaps, counterDef, aggregate.Codec[evlog.Event[inc]](evlog.NewCodec[inc](nil)), aggregate.Options{MaxAttempts: 1000})
	defer r2.Close()
	r := r1
	const workers, each = 8, 40
	var retries atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	hotVersions := map[uint64]int{} // version after each hot command → its count
	for w := range workers {
		wg.Go(func() {
			r := r1
			if w%2 == 1 {
				r = r2
			}
			for i := range each {
				id := "hot"
				if i%2 == 1 {
					id = fmt.Sprintf("cold-%d", w)
				}
				res, err := r.Execute(ctx, id, add("k", 1))
				if err != nil {
					t.Error(err)
					return
				}
				retries.Add(int64(res.Attempts - 1))
				if id == "hot" {
					mu.Lock()
					hotVersions[res.Version] = res.State.N["k"]
					mu.Unlock()
				}
				// A command that fails inside a batch fails alone.
				if _, err := r.Execute(ctx, id, add("k", -1_000_000)); err == nil {
					t.Error("an impossible command succeeded")
				}
			}
		})
	}
	wg.Wait()
	// Every hot command saw its own version and the state right after it.
	for v := uint64(1); v <= workers*each/2; v++ {
		if hotVersions[v] != int(v) {
			t.Fatalf("the command that made version %d saw k=%d", v, hotVersions[v])
		}
	}
	hot, err := r.Load(ctx, "hot")
	if err != nil {
		t.Fatal(err)
	}
	if hot.State.N["k"] != workers*each/2 || hot.Version != workers*each/2 {
		t.Fatalf("hot aggregate: %d after %d commands (version %d)", hot.State.N["k"], workers*each/2, hot.Version)
	}
	for w := range workers {
		c, _ := r.Load(ctx, fmt.Sprintf("cold-%d", w))
		if c.State.N["k"] != each/2 {
			t.Fatalf("cold-%d: %d, want %d", w, c.State.N["k"], each/2)
		}
	}
	// Whether the two repositories actually raced depends on scheduling;
	// TestConflictRetried makes a conflict happen deterministically.
	t.Logf("%d conflicts retried; log at seq %d", retries.Load(), l.LastSeq())
}

// TestConflictRetried: a command that loses a race once is reloaded,
// decided again on the new state, and appended.
func TestConflictRetried(t *testing.T) {
	ctx := t.Context()
	l, r := newRepo(t, aggregate.Options{}, evlog.Options{})
	r.Execute(ctx, "c", add("a", 1))
	ev, _ := evlog.Encode(evlog.Event[inc]{Type: "inc", Data: inc{"a", 10}})
	calls := 0
	res, err := r.Execute(ctx, "c", func(c counter) ([]evlog.Event[inc], error) {
		calls++
		if calls == 1 { // another writer appends between load and append
			if _, err := l.Append(ctx, "counter-c", evlog.ExpectAny, ev); err != nil {
				return nil, err
			}
		}
		return []evlog.Event[inc]{{Type: "inc", Data: inc{"b", c.N["a"]}}}, nil
	})
	if err != nil || res.Attempts != 2 || calls != 2 {
		t.Fatalf("execute: attempts %d, calls %d, %v", res.Attempts, calls, err)
	}
	if res.State.N["b"] != 11 || res.Version != 3 {
		t.Fatalf("the retry did not decide on the new state: %+v", res.Instance)
	}
}

// TestTooManyConflicts: a command that always loses reports it.
func TestTooManyConflicts(t *testing.T) {
	ctx := t.Context()
	l, r := newRepo(t, aggregate.Options{MaxAttempts: 3}, evlog.Options{})
	r.Execute(ctx, "c", add("a", 1))
	ev, _ := evlog.Encode(evlog.Event[inc]{Type: "inc", Data: inc{"b", 1}})
	_, err := r.Execute(ctx, "c", func(c counter) ([]evlog.Event[inc], error) {
		// A concurrent writer sneaks in before every append.
		l.Append(ctx, "counter-c", evlog.ExpectAny, ev)
		return []evlog.Event[inc]{{Type: "inc", Data: inc{"a", 1}}}, nil
	})
	if !errors.Is(err, aggregate.ErrTooManyConflicts) || !errors.Is(err, evlog.ErrVersionConflict) {
		t.Fatalf("got %v", err)
	}
}

// TestSnapshotPolicy: snapshots are taken every N events in the
// background, pruned to the newest K, and used for loads and time queries;
// the answers equal a full replay.
func TestSnapshotPolicy(t *testing.T) {
	ctx := t.Context()
	clock := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	l, r := newRepo(t, aggregate.Options{SnapshotEvery: 10, KeepSnapshots: 2}, evlog.Options{Clock: func() time.Time { clock = clock.Add(time.Minute); return clock }})
	for i := range 95 {
		if _, err := r.Execute(ctx, "c", add(fmt.Sprint(i%3), 1)); err != nil {
			t.Fatal(err)
		}
	}
	r.Close() // waits for background snapshots
	snaps, _ := l.Snapshots()
	list, err := snaps.List(r.Subject("c").Name)
	if err != nil || len(list) != 2 {
		t.Fatalf("snapshots after pruning: %v %v", list, err)
	}
	for _, target := range []replay.Target{replay.Latest(), replay.AtSeq(42), replay.AtTime(time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC))} {
		got, err := r.At(ctx, "c", target)
		if err != nil {
			t.Fatal(err)
		}
		full, err := replay.State(ctx, l, nil, r.Subject("c"), target, replay.Spec[counter, evlog.Event[inc]]{Init: counterDef.Init, Decode: evlog.NewCodec[inc](nil).Decode, Fold: counterDef.Apply}, replay.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(full.State, got.State); d != "" {
			t.Fatalf("%v: snapshot-based state differs (-full +got):\n%s", target, d)
		}
		if target == replay.Latest() && got.Plan.Snapshot == nil {
			t.Fatalf("latest state did not use a snapshot: %+v", got.Plan)
		}
	}
}

// blockingSaves is a snapshot store whose first Save waits until release
// is closed: a snapshot worker kept busy, deterministically.
type blockingSaves struct {
	aggregate.Snapshots
	started chan struct{} // closed when the first Save began
	release chan struct{}
	once    sync.Once
}

func (b *blockingSaves) Save(ctx context.Context, m snapshot.Meta, state []byte) (snapshot.Meta, error) {
	first := false
	b.once.Do(func() { first = true; close(b.started) })
	if first {
		<-b.release
	}
	return b.Snapshots.Save(ctx, m, state)
}

// TestSnapshotPolicyBusyWorker: while the background worker is busy with
// one snapshot, the snapshots that fall due are coalesced, not dropped:
// after Close the last due one (version 90 of 95, every 10) is on disk.
func TestSnapshotPolicyBusyWorker(t *testing.T) {
	ctx := t.Context()
	l, err := evlog.Open(t.TempDir(), evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	snaps := &blockingSaves{Snapshots: store, started: make(chan struct{}), release: make(chan struct{})}
	r := aggregate.NewRepository(l, snaps, counterDef, aggregate.Codec[evlog.Event[inc]](evlog.NewCodec[inc](nil)), aggregate.Options{SnapshotEvery: 10, KeepSnapshots: 2})
	for i := range 95 {
		if _, err := r.Execute(ctx, "c", add("a", 1)); err != nil {
			t.Fatal(err)
		}
		if i == 9 {
			<-snaps.started // the worker now holds the snapshot at 10
		}
	}
	close(snaps.release)
	r.Close()
	list, err := store.List(r.Subject("c").Name)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, m := range list {
		seqs = append(seqs, m.Seq)
	}
	slices.Sort(seqs)
	if d := cmp.Diff([]uint64{10, 90}, seqs); d != "" {
		t.Fatalf("snapshot seqs after a busy worker and Close (-want +got):\n%s", d)
	}
}

// TestLoadUsesSnapshot: a fresh repository loads from the newest snapshot
// and applies only the events after it.
func TestLoadUsesSnapshot(t *testing.T) {
	ctx := t.Context()
	l, r := newRepo(t, aggregate.Options{}, evlog.Options{})
	for range 50 {
		r.Execute(ctx, "c", add("a", 1))
	}
	if err := r.Snapshot(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r.Execute(ctx, "c", add("a", 1))
	}
	snaps, _ := l.Snapshots()
	r2 := aggregate.NewRepository(l, snaps, counterDef, aggregate.Codec[evlog.Event[inc]](evlog.NewCodec[inc](nil)), aggregate.Options{})
	defer r2.Close()
	res, err := r2.At(ctx, "c", replay.Latest())
	if err != nil || res.Plan.Snapshot == nil || res.Applied != 3 || res.State.N["a"] != 53 {
		t.Fatalf("at latest: applied %d, state %+v, plan %+v, %v", res.Applied, res.State, res.Plan, err)
	}
	_ = context.Background
}

// TestCommandPanicReleasesInstance: a panicking command re-panics in its
// caller, appends nothing, and leaves its instance usable: a command queued
// behind it completes, and later commands run.
func TestCommandPanicReleasesInstance(t *testing.T) {
	ctx := t.Context()
	l, r := newRepo(t, aggregate.Options{}, evlog.Options{})
	if _, err := r.Execute(ctx, "c", add("a", 1)); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	boom := func(c counter) ([]evlog.Event[inc], error) {
		close(entered)
		<-release
		c.N["a"] = 1000 // a half-applied change the repository must not keep
		panic("boom")
	}
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		r.Execute(ctx, "c", boom)
	}()
	<-entered // the panicking command leads the instance's queue now
	queued := make(chan error, 1)
	go func() {
		_, err := r.Execute(ctx, "c", add("a", 1))
		queued <- err
	}()
	// The second command is queued behind the first (or not yet: either
	// way it must complete once the first panicked).
	close(release)
	if v := <-panicked; v != "boom" {
		t.Fatalf("the caller recovered %v, want the command's panic \"boom\"", v)
	}
	if err := <-queued; err != nil {
		t.Fatalf("the command queued behind a panic: %v", err)
	}
	res, err := r.Execute(ctx, "c", add("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	if res.State.N["a"] != 3 || res.Version != 3 {
		t.Fatalf("after a panicking command: state %v at version %d, want a=3 at version 3", res.State.N, res.Version)
	}
	if n := l.LastSeq(); n != 3 {
		t.Fatalf("the log holds %d events, want 3 (nothing of the panicking command)", n)
	}
}

// TestTimeTravelUsesRetainedSnapshot: with the default retention (the zero
// SnapshotRetention: tiers), a temporal query days back replays from a
// snapshot the repository kept near that time; with the newest-2 policy of
// old (KeepSnapshots) the same query replays from the first event.
func TestTimeTravelUsesRetainedSnapshot(t *testing.T) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	now := time.Date(2026, 11, 9, 0, 0, 0, 0, time.UTC) // the repository's clock
	at := time.Date(2026, 11, 4, 12, 0, 0, 0, time.UTC) // event 42 (every event 2h after the last)
	for _, tc := range []struct {
		name     string
		opts     aggregate.Options
		kept     []uint64
		snapshot uint64 // the seq of the snapshot the query at `at` uses (0: none)
	}{
		// Ages at Nov 9 00:00: 90 is 12h old (hourly tier); the others
		// are in the daily tier, where 60 (Nov 6 00:00) gives way to 70
		// (Nov 6 20:00), the newest of its day.
		{"default tiers", aggregate.Options{Clock: func() time.Time { return now }}, []uint64{10, 20, 30, 40, 50, 70, 80, 90}, 40},
		{"newest 2 only", aggregate.Options{Clock: func() time.Time { return now }, KeepSnapshots: 2}, []uint64{80, 90}, 0},
		{"explicit tiers", aggregate.Options{Clock: func() time.Time { return now },
			SnapshotRetention: snapshot.PrunePolicy{Tiers: []snapshot.Tier{{Within: 5 * 24 * time.Hour, Every: 48 * time.Hour}}}},
			[]uint64{40, 70, 90}, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			clock := start
			l, r := newRepo(t, tc.opts, evlog.Options{Clock: func() time.Time { clock = clock.Add(2 * time.Hour); return clock }})
			for i := range 95 {
				if _, err := r.Execute(ctx, "c", add(fmt.Sprint(i%3), 1)); err != nil {
					t.Fatal(err)
				}
				if (i+1)%10 == 0 {
					if err := r.Snapshot(ctx, "c"); err != nil { // saves, then prunes with the retention
						t.Fatal(err)
					}
				}
			}
			snaps, _ := l.Snapshots()
			list, err := snaps.List(r.Subject("c").Name)
			if err != nil {
				t.Fatal(err)
			}
			var kept []uint64
			for _, m := range list {
				kept = append(kept, m.Seq)
			}
			if d := cmp.Diff(tc.kept, kept); d != "" {
				t.Errorf("snapshots kept (-want +got):\n%s", d)
			}
			got, err := r.At(ctx, "c", replay.AtTime(at))
			if err != nil {
				t.Fatal(err)
			}
			used := uint64(0)
			if got.Plan.Snapshot != nil {
				used = got.Plan.Snapshot.Seq
			}
			if used != tc.snapshot || got.Seq != 42 {
				t.Errorf("the state at %v (seq %d) came from snapshot %d, want %d (plan %+v)", at, got.Seq, used, tc.snapshot, got.Plan)
			}
			full, err := replay.State(ctx, l, nil, r.Subject("c"), replay.AtTime(at), replay.Spec[counter, evlog.Event[inc]]{Init: counterDef.Init, Decode: evlog.NewCodec[inc](nil).Decode, Fold: counterDef.Apply}, replay.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(full.State, got.State); d != "" {
				t.Errorf("snapshot-based state differs (-full +got):\n%s", d)
			}
		})
	}
}
