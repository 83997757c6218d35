package replay_test

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// snapSet records the snapshots a test saved, per subject name: the seqs
// of the usable ones and of the stale ones (another schema version).
type snapSet struct {
	good, stale map[string][]uint64
}

func (s snapSet) add(stale bool, name string, seq uint64) {
	m := s.good
	if stale {
		m = s.stale
	}
	m[name] = append(m[name], seq)
}

// expectPlan returns, for a target resolving to seq cut, the snapshot seq
// the plan must use (0: none) and the seqs of the stale snapshots it must
// report as fallbacks, newest first.
func (s snapSet) expectPlan(name string, cut uint64) (use uint64, fallbacks []uint64) {
	for _, q := range s.good[name] {
		if q <= cut {
			use = max(use, q)
		}
	}
	for _, q := range s.stale[name] {
		if q > use && q <= cut {
			fallbacks = append(fallbacks, q)
		}
	}
	slices.Sort(fallbacks)
	slices.Reverse(fallbacks)
	return use, fallbacks
}

// target is a replay target with the number of events it covers, computed
// independently of the log (from the events' recorded times).
type target struct {
	t    replay.Target
	cut  int
	desc string
}

// sampleTargets returns seq and time targets over events: every snapshot
// seq and its neighbours, random seqs, the exact recorded times of sampled
// events, the instants just before and after them and between events,
// before the first event and after the last.
func sampleTargets(rng *rand.Rand, events []event.Envelope, snapSeqs []uint64) []target {
	n := len(events)
	seqs := map[int]bool{0: true, 1: true, n - 1: true, n: true}
	for _, q := range snapSeqs {
		for d := -1; d <= 1; d++ {
			seqs[int(q)+d] = true
		}
	}
	for range 6 {
		seqs[rng.IntN(n+1)] = true
	}
	var out []target
	out = append(out, target{replay.Latest(), n, "latest"})
	for _, s := range slices.Sorted(maps.Keys(seqs)) {
		if s < 0 || s > n {
			continue
		}
		out = append(out, target{replay.AtSeq(uint64(s)), s, fmt.Sprintf("seq %d", s)})
	}
	atTime := func(tm time.Time, desc string) {
		out = append(out, target{replay.AtTime(tm), cutAtTime(events, tm), desc})
	}
	atTime(time.Time{}, "the zero time")
	atTime(events[0].Time.Add(-time.Nanosecond), "just before the first event")
	atTime(events[n-1].Time, "the last event's time")
	atTime(events[n-1].Time.Add(time.Nanosecond), "just after the last event")
	atTime(events[n-1].Time.Add(time.Hour), "an hour after the last event")
	fixed := len(out)
	for _, s := range slices.Sorted(maps.Keys(seqs)) {
		if s < 1 || s > n {
			continue
		}
		e := events[s-1]
		atTime(e.Time, fmt.Sprintf("seq %d's time", s))
		atTime(e.Time.Add(-time.Nanosecond), fmt.Sprintf("just before seq %d's time", s))
		atTime(e.Time.Add(time.Nanosecond), fmt.Sprintf("just after seq %d's time", s))
		if s < n {
			if next := events[s].Time; next.Sub(e.Time) > time.Nanosecond {
				atTime(e.Time.Add(next.Sub(e.Time)/2), fmt.Sprintf("between seqs %d and %d", s, s+1))
			}
		}
	}
	// Keep the run short: a random subset of the rest.
	const keep = 60
	rest := out[fixed:]
	rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	return out[:fixed+min(keep, len(rest))]
}

// TestStateMatchesReference is the property test of issue 3: for random
// logs (several streams, a wall clock that stands still and steps back,
// explicit equal times) and random snapshot sets (usable ones and stale
// ones whose state is wrong, so that using one shows), the state at every
// sampled seq and time target, computed via snapshots, equals the state of
// a full replay and that of a fold of the events read with Log.Events, for
// the whole log and for each stream; and the plan uses the newest usable
// snapshot at or before the target and applies exactly the events after it.
func TestStateMatchesReference(t *testing.T) {
	seed := testSeed(t)
	sawEqualTimes := false
	for i := range 3 {
		rng := newRand(seed + uint64(i))
		var snaps snapSet
		rl := buildRandomLog(t, rng, t.TempDir(), 100+rng.IntN(400), func(l *evlog.Log, events []event.Envelope) {
			snaps = saveRandomSnapshots(t, rng, l, events)
		})
		events := rl.events
		for j := 1; j < len(events); j++ {
			if events[j].Time.Before(events[j-1].Time) {
				t.Fatalf("log %d: event %d recorded at %v, before event %d (%v)", i, j+1, events[j].Time, j, events[j-1].Time)
			}
			sawEqualTimes = sawEqualTimes || events[j].Time.Equal(events[j-1].Time)
		}
		ro := openRO(t, rl.dir, evlog.Options{})
		store := snapshots(t, ro)
		if got := readAll(t, ro); !cmp.Equal(got, events, stateCmp) {
			t.Fatalf("log %d: the read-only log reads differently from the writer", i)
		}
		var snapSeqs []uint64
		for _, m := range []map[string][]uint64{snaps.good, snaps.stale} {
			for _, seqs := range m {
				snapSeqs = append(snapSeqs, seqs...)
			}
		}
		targets := sampleTargets(rng, events, snapSeqs)
		t.Logf("log %d: %d events, %d streams, %d targets, snapshots %v, stale %v", i, len(events), len(rl.streams), len(targets), snaps.good, snaps.stale)
		refs := memo(func(n int) stats { return refStats(events, n) })
		cartRefs := map[string]func(int) cart{}
		for _, stream := range rl.streams {
			cartRefs[stream] = memo(func(n int) cart { return refCart(t, events, stream, n) })
		}
		for _, tg := range targets {
			checkTarget(t, ro, store, snaps, statsSubject, statsSpec, events, tg, refs)
			checkTarget(t, ro, store, snaps, statsSubject, statsSpecNoCopy, events, tg, refs)
			for _, stream := range rl.streams {
				checkTarget(t, ro, store, snaps, cartSubject(stream), cartSpec, events, tg, cartRefs[stream])
			}
		}
		// A seq beyond the end is refused.
		if _, err := replay.State(t.Context(), ro, store, statsSubject, replay.AtSeq(uint64(len(events)+1)), statsSpec, replay.Options{}); !errors.Is(err, replay.ErrBeyondEnd) {
			t.Errorf("log %d: state at seq %d (beyond the end): %v, want ErrBeyondEnd", i, len(events)+1, err)
		}
	}
	if !sawEqualTimes {
		t.Errorf("no two consecutive events share a recorded time: the workload does not test equal times")
	}
}

// saveRandomSnapshots saves usable and stale snapshots of the whole log and
// of each stream at random seqs.
func saveRandomSnapshots(t *testing.T, rng *rand.Rand, l *evlog.Log, events []event.Envelope) snapSet {
	t.Helper()
	set := snapSet{good: map[string][]uint64{}, stale: map[string][]uint64{}}
	store := snapshots(t, l)
	n := len(events)
	used := map[string]bool{}
	for range 2 + rng.IntN(6) {
		k := 1 + rng.IntN(n)
		if used[snapshot.FormatFileName(statsSubject.Name, uint64(k))] {
			continue
		}
		m := saveStats(t, store, l.LogID(), statsSubject, events, k)
		used[m.File] = true
		set.add(false, m.Name, m.Seq)
	}
	// Stale: an older schema version, holding a state that would be wrong.
	stale := statsSubject
	stale.SchemaVersion--
	for range rng.IntN(4) {
		k := 1 + rng.IntN(n)
		if used[snapshot.FormatFileName(stale.Name, uint64(k))] {
			continue
		}
		res := replay.Result[stats]{State: refStats(events, k/2), Seq: events[k-1].Seq, Time: events[k-1].Time}
		m, _, err := replay.Save(t.Context(), store, l.LogID(), stale, statsSpec, res)
		if err != nil {
			t.Fatal(err)
		}
		used[m.File] = true
		set.add(true, m.Name, m.Seq)
	}
	streams := map[string]bool{}
	for _, e := range events {
		streams[e.Stream] = true
	}
	for _, stream := range slices.Sorted(maps.Keys(streams)) {
		for range rng.IntN(5) {
			if m, ok := saveCart(t, store, l.LogID(), stream, events, 1+rng.IntN(n)); ok {
				used[m.File] = true
				set.add(false, m.Name, m.Seq)
			}
		}
		if rng.IntN(2) == 0 {
			// A stale one, anchored at a random event of the stream.
			k := 1 + rng.IntN(n)
			for k > 0 && events[k-1].Stream != stream {
				k--
			}
			subj := cartSubject(stream)
			subj.SchemaVersion = 7
			if k == 0 || used[snapshot.FormatFileName(subj.Name, uint64(k))] {
				continue
			}
			res := replay.Result[cart]{State: cart{Version: 999, Log: []string{"stale"}}, Seq: events[k-1].Seq, Time: events[k-1].Time}
			m, _, err := replay.Save(t.Context(), store, l.LogID(), subj, cartSpec, res)
			if err != nil {
				t.Fatal(err)
			}
			used[m.File] = true
			set.add(true, m.Name, m.Seq)
		}
	}
	return set
}

// memo caches f's results by argument (the reference states per cut).
func memo[S any](f func(int) S) func(int) S {
	m := map[int]S{}
	return func(n int) S {
		s, ok := m[n]
		if !ok {
			s = f(n)
			m[n] = s
		}
		return s
	}
}

// checkTarget computes the state of subj at tg via snapshots and by a full
// replay and compares both with ref(tg.cut), and checks the plan.
func checkTarget[S, E any](t *testing.T, src *evlog.Log, store *snapshot.Store, snaps snapSet, subj replay.Subject, spec replay.Spec[S, E], events []event.Envelope, tg target, ref func(n int) S) {
	t.Helper()
	ctx := t.Context()
	where := func() string { return fmt.Sprintf("%s at %s", subj.Name, tg.desc) } // formatted only for a failure
	want := ref(tg.cut)

	p, err := replay.MakePlan(ctx, src, store, subj, tg.t, replay.Options{})
	if err != nil {
		t.Fatalf("%s: MakePlan: %v", where(), err)
	}
	got, err := replay.Run(ctx, src, p, spec)
	if err != nil {
		t.Fatalf("%s: Run: %v", where(), err)
	}
	full, err := replay.State(ctx, src, store, subj, tg.t, spec, replay.Options{NoSnapshot: true})
	if err != nil {
		t.Fatalf("%s: full replay: %v", where(), err)
	}
	if !sameState(want, got.State) {
		t.Fatalf("%s: state via snapshot %v differs from the reference (-want +got):\n%s", where(), p.Snapshot, cmp.Diff(want, got.State, stateCmp))
	}
	if !sameState(want, full.State) {
		t.Fatalf("%s: state of a full replay differs from the reference (-want +got):\n%s", where(), cmp.Diff(want, full.State, stateCmp))
	}
	if full.Plan.Snapshot != nil || full.Plan.FromSeq != 1 {
		t.Errorf("%s: the NoSnapshot plan starts from %v, seq %d", where(), full.Plan.Snapshot, full.Plan.FromSeq)
	}

	// The plan: the newest usable snapshot at or before the target.
	cut := uint64(tg.cut)
	use, fallbacks := snaps.expectPlan(subj.Name, cut)
	if p.ToSeq != cut {
		t.Errorf("%s: plan ToSeq %d, want %d", where(), p.ToSeq, cut)
	}
	gotUse := uint64(0)
	if p.Snapshot != nil {
		gotUse = p.Snapshot.Seq
		m := p.Snapshot
		if m.Name != subj.Name || m.SchemaVersion != subj.SchemaVersion || m.LogID != src.LogID() || !m.Time.Equal(events[m.Seq-1].Time) {
			t.Errorf("%s: plan uses snapshot %+v", where(), *m)
		}
	}
	if gotUse != use {
		t.Errorf("%s: plan uses the snapshot at seq %d, want %d", where(), gotUse, use)
	}
	if p.FromSeq != use+1 {
		t.Errorf("%s: plan FromSeq %d, want %d", where(), p.FromSeq, use+1)
	}
	var gotFallbacks []uint64
	for _, f := range p.Fallbacks {
		gotFallbacks = append(gotFallbacks, f.Seq)
		if f.Reason == "" || f.File == "" {
			t.Errorf("%s: fallback %+v without a file or reason", where(), f)
		}
	}
	if !slices.Equal(gotFallbacks, fallbacks) {
		t.Errorf("%s: fallbacks at seqs %v, want %v (the stale snapshots newer than the one used)", where(), gotFallbacks, fallbacks)
	}

	// The result: exactly the events of the scope after the snapshot.
	applied, last := 0, use
	for _, e := range events[use:cut] {
		if subj.Stream == "" || e.Stream == subj.Stream {
			applied++
			last = e.Seq
		}
	}
	if got.Applied != applied {
		t.Errorf("%s: Applied %d, want %d (events of the scope in seqs %d..%d)", where(), got.Applied, applied, use+1, cut)
	}
	if got.Seq != last {
		t.Errorf("%s: result Seq %d, want %d", where(), got.Seq, last)
	}
	if last > 0 {
		e := events[last-1]
		if !got.Time.Equal(e.Time) {
			t.Errorf("%s: result Time %v, want %v (seq %d's)", where(), got.Time, e.Time, last)
		}
		if subj.Stream != "" && got.Version != e.Version {
			t.Errorf("%s: result Version %d, want %d", where(), got.Version, e.Version)
		}
	}
	if full.Seq != got.Seq || !full.Time.Equal(got.Time) || (subj.Stream != "" && full.Version != got.Version) {
		t.Errorf("%s: full replay ends at seq %d (%v) version %d, via snapshot at seq %d (%v) version %d", where(), full.Seq, full.Time, full.Version, got.Seq, got.Time, got.Version)
	}
}

// sameState, the fast check before cmp, agrees with cmp.Equal(stateCmp) on
// states differing in each field, and compares every field there is.
func TestSameStateAgreesWithCmp(t *testing.T) {
	if n := reflect.TypeFor[stats]().NumField(); n != 5 {
		t.Fatalf("stats has %d fields; sameState compares 5", n)
	}
	if n := reflect.TypeFor[cart]().NumField(); n != 3 {
		t.Fatalf("cart has %d fields; sameState compares 3", n)
	}
	ss := []stats{{}, {ByType: map[string]int{}}, {Events: 1}, {LastSeq: 1}, {Digest: 1},
		{ByType: map[string]int{"a": 1}}, {ByType: map[string]int{"a": 2}}, {ByStream: map[string]int{"a": 1}}}
	for i, a := range ss {
		for j, b := range ss {
			if same, equal := sameState(a, b), cmp.Equal(a, b, stateCmp); same != equal {
				t.Errorf("stats %d and %d: sameState %v, cmp.Equal %v", i, j, same, equal)
			}
		}
	}
	cs := []cart{{}, {Qty: map[string]int{}, Log: []string{}}, {Version: 1}, {Qty: map[string]int{"a": 1}},
		{Qty: map[string]int{"b": 1}}, {Log: []string{"a"}}, {Log: []string{"a", "b"}}}
	for i, a := range cs {
		for j, b := range cs {
			if same, equal := sameState(a, b), cmp.Equal(a, b, stateCmp); same != equal {
				t.Errorf("carts %d and %d: sameState %v, cmp.Equal %v", i, j, same, equal)
			}
		}
	}
}
