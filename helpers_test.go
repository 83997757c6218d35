package evlog

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog/internal/vfs"
)

// t0 is the recorded time workloads start from.
var t0 = time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)

// fakeClock returns a clock that advances by step on every call.
func fakeClock(start time.Time, step time.Duration) func() time.Time {
	t := start
	return func() time.Time { t = t.Add(step); return t }
}

// openMem opens a writer on fsys, failing the test on error.
func openMem(t testing.TB, fsys vfs.FS, opts Options) *Log {
	t.Helper()
	l, err := openFS(fsys, opts, false)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

// readAll returns every event of l in seq order.
func readAll(t testing.TB, l *Log) []Envelope {
	t.Helper()
	var out []Envelope
	for e, err := range l.Events(t.Context(), 1) {
		if err != nil {
			t.Fatalf("reading events: %v", err)
		}
		out = append(out, e)
	}
	return out
}

// envCmp compares envelopes, treating nil and empty Meta/Data alike.
var envCmp = []cmp.Option{cmpopts.EquateEmpty()}

// batch is one append call of a workload: the events it asked for and,
// once acknowledged, what the log assigned.
type batch struct {
	reqs  []AppendRequest
	acked bool
	pos   []Position
}

// genWorkload returns n deterministic batches over a few streams, with
// explicit, increasing recorded times (so expected envelopes are exact).
func genWorkload(seed uint64, n int) []*batch {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	streams := []string{"cart-1", "cart-2", "inventory", "user-7", "s"}
	var out []*batch
	tm := t0
	ev := 0
	for range n {
		b := &batch{}
		parts := 1
		if rng.IntN(4) == 0 {
			parts = 2 + rng.IntN(2)
		}
		for p := range parts {
			r := AppendRequest{Stream: streams[(rng.IntN(len(streams))+p)%len(streams)], Expect: ExpectAny}
			for range 1 + rng.IntN(3) {
				ev++
				tm = tm.Add(time.Duration(rng.IntN(3)) * time.Millisecond) // equal times happen
				e := Envelope{Type: []string{"item_added", "item_removed"}[rng.IntN(2)], Time: tm,
					Data: fmt.Appendf(nil, "\xa5ev%03d", ev%1000)}
				if rng.IntN(5) == 0 {
					e.Meta = map[string]string{"correlation_id": fmt.Sprint(ev)}
				}
				if rng.IntN(7) == 0 {
					e.ID = fmt.Sprintf("id-%d-%d", seed, ev) // unique across workloads of other seeds
				}
				r.Events = append(r.Events, e)
			}
			b.reqs = append(b.reqs, r)
		}
		out = append(out, b)
	}
	return out
}

// runWorkload appends the batches in order until the first error and
// returns it (nil if all were acknowledged). Sync is called after every
// batch when the log does not sync by itself.
func runWorkload(ctx context.Context, l *Log, work []*batch) error {
	for _, b := range work {
		pos, err := l.AppendBatch(ctx, b.reqs)
		if err != nil {
			return err
		}
		if l.opts.Sync != SyncAlways {
			if err := l.Sync(ctx); err != nil {
				return err
			}
		}
		b.acked, b.pos = true, pos
	}
	return nil
}

// envsDiff returns "" when want and got hold the same envelopes, else
// go-cmp's explanation (-want +got). It checks with envsEqual first:
// cmp.Diff walks every payload byte through reflection, which in hot loops
// costs far more than the engine under test.
func envsDiff(want, got []Envelope) string {
	if envsEqual(want, got) {
		return ""
	}
	if d := cmp.Diff(want, got, envCmp...); d != "" {
		return d
	}
	return "envsEqual and go-cmp disagree: the envelopes differ in a way cmp.Diff does not show"
}

// envsDiffExact is cmp.Diff(want, got) with no options (nil and empty
// Data or Meta differ), "" when they are equal, with envsEqual and a
// check of the nil ones as the fast path.
func envsDiffExact(want, got []Envelope) string {
	if envsEqual(want, got) && (want == nil) == (got == nil) && slices.EqualFunc(want, got, func(x, y Envelope) bool {
		return (x.Data == nil) == (y.Data == nil) && (x.Meta == nil) == (y.Meta == nil)
	}) {
		return ""
	}
	return cmp.Diff(want, got)
}

// envsEqual is a fast exact comparison for hot test loops (go-cmp then
// explains a difference).
func envsEqual(a, b []Envelope) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := &a[i], &b[i]
		if x.Seq != y.Seq || x.Stream != y.Stream || x.Version != y.Version || x.Type != y.Type ||
			x.SchemaVersion != y.SchemaVersion || x.ID != y.ID || !x.Time.Equal(y.Time) ||
			string(x.Data) != string(y.Data) || !maps.Equal(x.Meta, y.Meta) {
			return false
		}
	}
	return true
}

// crashStates keeps the file states a crash left under the models checked
// so far at one crash point, so that a model leaving a state already
// checked there is not checked again: recovery and the checks after it see
// only the files (names and bytes; a crashed Mem has nothing else: no
// pending directory operations, no unsynced data, no locks, no handles),
// under the same options, fake clock and expectations, so the second check
// is the first one over again.
type crashStates struct{ seen [][]memFile }

type memFile struct {
	name string
	data []byte
}

// checked reports whether m holds the same files as a state already
// seen, and records m's otherwise.
func (s *crashStates) checked(m *vfs.Mem) bool {
	names, err := m.List()
	if err != nil {
		return false
	}
	slices.Sort(names)
	files := make([]memFile, 0, len(names))
	for _, n := range names {
		b, err := m.ReadFile(n)
		if err != nil {
			return false
		}
		files = append(files, memFile{n, b})
	}
	for _, prev := range s.seen {
		if slices.EqualFunc(prev, files, func(a, b memFile) bool { return a.name == b.name && bytes.Equal(a.data, b.data) }) {
			return true
		}
	}
	s.seen = append(s.seen, files)
	return false
}
