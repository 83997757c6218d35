package evlog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// crashOpts are the options of the crash loops: tiny segments so that the
// workload rolls often.
//
// Workloads carry explicit times from t0 on while the clock stays at t0,
// and probes after recovery append "a year later": no clock skew limit.
func crashOpts(sync SyncMode) Options {
	return Options{SegmentSize: MinSegmentSize, Sync: sync, Clock: fakeClock(t0, 0), MaxClockSkew: NoClockSkewLimit}
}

// checkRecovered reopens a crashed directory and checks the durability
// contract against the workload: every acknowledged batch is present and
// identical, seqs are contiguous, nothing but whole attempted batches
// follows, and the log accepts appends again. It returns a description of
// the first violation ("" if none).
func checkRecovered(ctx context.Context, fsys vfs.FS, opts Options, work []*batch) string {
	l, err := openFS(fsys, opts, false)
	if err != nil {
		return fmt.Sprintf("reopen failed: %v", err)
	}
	defer l.Close()
	var got []Envelope
	for e, err := range l.Events(ctx, 1) {
		if err != nil {
			return fmt.Sprintf("reading after recovery: %v", err)
		}
		got = append(got, e)
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) {
			return fmt.Sprintf("event %d has seq %d: seqs are not contiguous", i, e.Seq)
		}
	}
	// Walk the workload: every acknowledged batch must be there, whole and
	// in order; an unacknowledged one is either there whole or absent.
	i := 0
	vers := make(map[string]uint64)
	for bi, b := range work {
		want := expectedEvents(b, uint64(i+1), vers)
		n := len(want)
		if i+n <= len(got) && envsEqual(want, got[i:i+n]) {
			if b.acked {
				k := i
				for ri, r := range b.reqs {
					k += len(r.Events)
					if p := (Position{Seq: got[k-1].Seq, Version: got[k-1].Version, Time: got[k-1].Time}); p.Seq != b.pos[ri].Seq || p.Version != b.pos[ri].Version || !p.Time.Equal(b.pos[ri].Time) {
						return fmt.Sprintf("batch %d part %d: Append reported %+v, the log holds %+v", bi, ri, b.pos[ri], p)
					}
				}
			}
			for _, e := range want {
				vers[e.Stream] = e.Version
			}
			i += n
			continue
		}
		if b.acked {
			if i+n > len(got) {
				return fmt.Sprintf("acknowledged batch %d (up to seq %d) is missing; the log ends at seq %d", bi, b.pos[len(b.pos)-1].Seq, len(got))
			}
			return fmt.Sprintf("acknowledged batch %d differs after recovery (-want +got):\n%s", bi, cmp.Diff(want, got[i:i+n], envCmp...))
		}
	}
	if i != len(got) {
		return fmt.Sprintf("%d events after the last batch found (seq %d): a partial or phantom batch", len(got)-i, i)
	}
	if _, err := l.Append(ctx, "after-crash", ExpectNoStream, Envelope{Type: "probe", Time: t0.AddDate(1, 0, 0)}); err != nil {
		return fmt.Sprintf("append after recovery: %v", err)
	}
	// Every event again (an append that replaced the active segment would
	// lose some), counted: borrowed, as nothing is kept.
	n := 0
	for _, err := range l.RangeBorrowed(ctx, 1, math.MaxUint64) {
		if err != nil {
			return fmt.Sprintf("reading after one more append: %v", err)
		}
		n++
	}
	if n != len(got)+1 {
		return fmt.Sprintf("after one more append the log has %d events, want %d", n, len(got)+1)
	}
	return ""
}

// expectedEvents returns the events of b as the log stores them when b's
// first event gets seq first and the streams are at the versions vers.
func expectedEvents(b *batch, first uint64, vers map[string]uint64) []Envelope {
	var out []Envelope
	local := make(map[string]uint64)
	for _, r := range b.reqs {
		v, ok := local[r.Stream]
		if !ok {
			v = vers[r.Stream]
		}
		for _, e := range r.Events {
			v++
			e.Stream, e.Version, e.Seq = r.Stream, v, first
			if e.SchemaVersion == 0 {
				e.SchemaVersion = 1
			}
			first++
			out = append(out, e)
		}
		local[r.Stream] = v
	}
	return out
}

// crashLoop runs the workload on a fresh Mem crashed at every mutating op
// k, then checks recovery under every crash model. wrap, if not nil,
// wraps the Mem the engine sees (to make it lie, for the teeth tests). It
// returns the violations found.
func crashLoop(t *testing.T, seed uint64, nbatches int, mode SyncMode, wrap func(vfs.FS) vfs.FS) []string {
	t.Helper()
	ctx := t.Context()
	if wrap == nil {
		wrap = func(f vfs.FS) vfs.FS { return f }
	}
	// Count the workload's operations.
	probe := vfs.NewMem()
	l := openMem(t, wrap(probe), crashOpts(mode))
	if err := runWorkload(ctx, l, genWorkload(seed, nbatches)); err != nil {
		t.Fatalf("workload without crash: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	total := probe.Ops()
	reqs := genWorkload(seed, nbatches) // generated once: the crash points share its requests, read-only
	bad := eachCrashPoint(t, total, func(k int, checked *atomic.Int64) []string {
		return crashAt(ctx, seed, reqs, mode, wrap, k, total, checked)
	})
	t.Logf("seed %d: crashed at each of %d ops under %d models", seed, total+1, len(vfs.CrashModels()))
	return bad
}

// eachCrashPoint runs check for every crash point k in [0, total] on
// GOMAXPROCS workers (the points are independent: each a fresh Mem) and
// returns their violations in the order of k. check adds one to checked
// per crash model it checked; eachCrashPoint fails the test unless every
// point was checked under every model.
func eachCrashPoint(t *testing.T, total int, check func(k int, checked *atomic.Int64) []string) []string {
	t.Helper()
	badAt := make([][]string, total+1)
	var next, checked atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k > total {
					return
				}
				badAt[k] = check(k, &checked)
			}
		})
	}
	wg.Wait()
	if want := int64((total + 1) * len(vfs.CrashModels())); checked.Load() != want {
		t.Fatalf("checked %d crash states, want %d (every op under every model)", checked.Load(), want)
	}
	var bad []string
	for _, b := range badAt {
		bad = append(bad, b...)
	}
	return bad
}

// unrun returns a workload of the requests of work, none acknowledged
// yet. The requests are shared: nothing writes them (the race detector
// would see it, as the crash points run in parallel).
func unrun(work []*batch) []*batch {
	out := make([]*batch, len(work))
	for i, b := range work {
		out[i] = &batch{reqs: b.reqs}
	}
	return out
}

// crashAt runs the workload on a fresh Mem that loses power at op k (of
// total), then checks recovery under every crash model, adding one to
// checked per model. It returns the violations found.
func crashAt(ctx context.Context, seed uint64, reqs []*batch, mode SyncMode, wrap func(vfs.FS) vfs.FS, k, total int, checked *atomic.Int64) []string {
	var bad []string
	mem := vfs.NewMem()
	mem.CrashAt(k)
	work := unrun(reqs)
	if l, err := openFS(wrap(mem), crashOpts(mode), false); err == nil {
		werr := runWorkload(ctx, l, work)
		cerr := l.Close()
		if k < total && (werr == nil && cerr == nil) {
			bad = append(bad, fmt.Sprintf("k=%d: the crash went unnoticed", k))
		}
	} else if !errors.Is(err, vfs.ErrCrashed) {
		bad = append(bad, fmt.Sprintf("k=%d: open failed with %v", k, err))
	}
	var states crashStates
	for _, model := range vfs.CrashModels() {
		rng := rand.New(rand.NewPCG(seed, uint64(k)<<8|uint64(model)))
		after := mem.CrashClone(model, rng)
		// The same files as under a model before: that check stands for this one.
		if !states.checked(after) {
			if msg := checkRecovered(ctx, wrap(after), crashOpts(mode), work); msg != "" {
				bad = append(bad, fmt.Sprintf("k=%d/%d model=%v seed=%d: %s", k, total, model, seed, msg))
			}
		}
		checked.Add(1)
	}
	return bad
}

func TestCrashLoop(t *testing.T) {
	for _, tc := range []struct {
		name string
		sync SyncMode
		// deferred: the interval's checkpoints are written as in the
		// background (on an operating-system directory), their file
		// operations after the next group's (checkpointDeferred).
		deferred bool
	}{
		{"always", SyncAlways, false},
		{"never+Sync", SyncNever, false},
		{"always, background checkpoints", SyncAlways, true},
		{"never+Sync, background checkpoints", SyncNever, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.deferred {
				checkpointDeferred = true
				t.Cleanup(func() { checkpointDeferred = false })
			}
			bad := crashLoop(t, 1, 170, tc.sync, nil)
			for _, b := range bad[:min(len(bad), 10)] {
				t.Error(b)
			}
			if len(bad) > 10 {
				t.Errorf("… and %d more violations", len(bad)-10)
			}
		})
	}
}

// TestCrashLoopHasTeeth shows the crash loop catches an engine that skips
// its directory fsyncs, or acknowledges appends before they are fsynced.
func TestCrashLoopHasTeeth(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(vfs.FS) vfs.FS
	}{
		{"no directory fsync", func(f vfs.FS) vfs.FS { return vfs.NoSync{FS: f, Dirs: true} }},
		{"ack before fsync", func(f vfs.FS) vfs.FS { return vfs.NoSync{FS: f, Dirs: true, Files: vfs.AnyFile} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := crashLoop(t, 2, 30, SyncAlways, tc.wrap)
			if len(bad) == 0 {
				t.Fatal("the crash loop found no violation: it has no teeth")
			}
			t.Logf("%d violations, e.g. %s", len(bad), bad[0])
		})
	}
}

// crashStates, which lets a crash loop skip a crash model that left the
// files of one it checked, tells apart states differing in a name, a file
// or a byte.
func TestCrashStates(t *testing.T) {
	mem := func(files ...string) *vfs.Mem {
		m := vfs.NewMem()
		for i := 0; i < len(files); i += 2 {
			if err := m.WriteFile(files[i], []byte(files[i+1])); err != nil {
				t.Fatal(err)
			}
		}
		return m
	}
	var s crashStates
	for i, c := range []struct {
		m    *vfs.Mem
		seen bool
	}{
		{mem("a", "xy"), false},
		{mem("a", "xy"), true},
		{mem("a", "xz"), false},
		{mem("a", "x"), false},
		{mem("b", "xy"), false},
		{mem("a", "xy", "b", ""), false},
		{mem(), false},
		{mem("b", "xy"), true},
		{mem(), true},
	} {
		if got := s.checked(c.m); got != c.seen {
			t.Errorf("state %d: checked %v, want %v", i, got, c.seen)
		}
	}
}

// envsEqual compares every field of an envelope, and envsDiffExact agrees
// with cmp.Diff on envelopes differing in each field or only in nil and
// empty Data or Meta.
func TestEnvsDiffExactAgreesWithCmp(t *testing.T) {
	if n := reflect.TypeFor[Envelope]().NumField(); n != 9 {
		t.Fatalf("Envelope has %d fields; envsEqual compares 9", n)
	}
	envs := [][]Envelope{nil, {}, {{}}, {{Seq: 1}}, {{Stream: "s"}}, {{Version: 1}}, {{Type: "t"}}, {{SchemaVersion: 1}},
		{{ID: "i"}}, {{Time: t0}}, {{Data: []byte{}}}, {{Data: []byte{1}}}, {{Meta: map[string]string{}}}, {{Meta: map[string]string{"k": "v"}}}, {{}, {}}}
	for i, a := range envs {
		for j, b := range envs {
			if fast, slow := envsDiffExact(a, b) == "", cmp.Diff(a, b) == ""; fast != slow {
				t.Errorf("envelopes %d and %d: envsDiffExact equal %v, cmp.Diff equal %v", i, j, fast, slow)
			}
		}
	}
}
