package evlog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
)

// model is the reference the log is checked against: a slice of events.
type model struct {
	events   []Envelope
	versions map[string]uint64
	// Appends whose events carry IDs: written ones with the positions
	// they got (retried later: nothing is written again), and refused
	// ones (nothing was written: a retry is a new append).
	written []modelAppend
	refused [][]AppendRequest
	nextID  int
}

type modelAppend struct {
	reqs []AppendRequest
	pos  []Position
}

func (m *model) lastTime() time.Time {
	if len(m.events) == 0 {
		return t0
	}
	return m.events[len(m.events)-1].Time
}

// TestModel runs random operation sequences against the log and the model
// and compares every observable result (envsDiff: exact, go-cmp explains).
func TestModel(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { runModel(t, seed, 300) })
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 77))
	ctx := t.Context()
	mem := vfs.NewMem()
	clockT := t0
	opts := Options{SegmentSize: MinSegmentSize, Clock: func() time.Time {
		// A wall clock that sometimes steps backwards: the log clamps.
		clockT = clockT.Add(time.Duration(rng.IntN(2000)-500) * time.Microsecond)
		return clockT
	}}
	l := openMem(t, mem, opts)
	defer func() { l.Close() }()
	m := &model{versions: make(map[string]uint64)}
	// Streams of two categories (one id holding the separator) and two
	// outside any.
	streams := []string{"inv-1", "inv-2", "inv-a-b", "wal-1", "wal-2", "f", "g"}
	categories := []string{"inv", "wal", "inv-a"}
	expectFor := func(s string) (Expectation, bool) {
		v := m.versions[s]
		switch rng.IntN(6) {
		case 0:
			return ExpectAny, true
		case 1:
			return ExpectNoStream, v == 0
		case 2:
			return ExpectVersion(v + 1), false
		default:
			return ExpectVersion(v), true
		}
	}
	// appendChecked appends reqs and checks the outcome against the model
	// (ok: every expectation holds; explicit: some event has a Time).
	appendChecked := func(step int, reqs []AppendRequest, ok, explicit bool) {
		hasIDs := reqs[0].Events[0].ID != ""
		pos, err := l.AppendBatch(ctx, reqs)
		if err != nil && hasIDs {
			m.refused = append(m.refused, reqs)
		}
		switch {
		case !ok:
			if !errors.Is(err, ErrVersionConflict) && !(explicit && errors.Is(err, ErrTimeBackwards)) {
				t.Fatalf("step %d: want a version conflict, got %v", step, err)
			}
		case err != nil && errors.Is(err, ErrTimeBackwards):
			// Possible whenever an explicit time was set: it may precede
			// the log's last time or a time stamped earlier in the batch.
			if !explicit {
				t.Fatalf("step %d: ErrTimeBackwards without an explicit time", step)
			}
			if l.LastSeq() != uint64(len(m.events)) {
				t.Fatalf("step %d: a refused batch changed the log", step)
			}
		case err != nil:
			t.Fatalf("step %d: append: %v", step, err)
		default:
			// Apply to the model; times: read back what the log chose
			// and check the clamping rule.
			var got []Envelope
			for e, err := range l.Events(ctx, uint64(len(m.events)+1)) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, e)
			}
			k := 0
			for ri, r := range reqs {
				for _, e := range r.Events {
					m.versions[r.Stream]++
					e.Stream, e.Seq, e.Version, e.SchemaVersion = r.Stream, uint64(len(m.events)+1), m.versions[r.Stream], 1
					if len(m.events) > 0 && got[k].Time.Before(m.lastTime()) {
						t.Fatalf("step %d: recorded time %v before the last %v", step, got[k].Time, m.lastTime())
					}
					if e.Time.IsZero() {
						e.Time = got[k].Time
					}
					m.events = append(m.events, e)
					k++
				}
				if want := (Position{Seq: uint64(len(m.events)), Version: m.versions[r.Stream], Time: m.events[len(m.events)-1].Time}); pos[ri].Seq != want.Seq || pos[ri].Version != want.Version || !pos[ri].Time.Equal(want.Time) {
					t.Fatalf("step %d: position %+v, want %+v", step, pos[ri], want)
				}
			}
			if hasIDs {
				m.written = append(m.written, modelAppend{reqs, pos})
			}
		}
	}
	newID := func() string {
		m.nextID++
		return fmt.Sprint("id-", m.nextID)
	}
	for step := range steps {
		switch op := rng.IntN(25); {
		case op < 10: // append, possibly a multi-stream batch, with IDs or without
			var reqs []AppendRequest
			ok := true
			explicit := false
			withIDs := rng.IntN(2) == 0
			local := make(map[string]uint64)
			for range 1 + rng.IntN(3) {
				s := streams[rng.IntN(len(streams))]
				exp, good := expectFor(s)
				if _, seen := local[s]; seen {
					exp, good = ExpectAny, true
				}
				ok = ok && good
				r := AppendRequest{Stream: s, Expect: exp}
				for range 1 + rng.IntN(4) {
					e := Envelope{Type: "t" + fmt.Sprint(rng.IntN(3)), Data: []byte{0xa1, byte('a' + rng.IntN(26))}}
					if withIDs {
						e.ID = newID()
					}
					if rng.IntN(8) == 0 {
						// An explicit time, sometimes before the log's last.
						e.Time = m.lastTime().Add(time.Duration(rng.IntN(3000)-1000) * time.Microsecond)
						explicit = true
					}
					r.Events = append(r.Events, e)
				}
				local[s] = 1
				reqs = append(reqs, r)
			}
			appendChecked(step, reqs, ok, explicit)
		case op < 12: // read a stream from a version
			s := streams[rng.IntN(len(streams))]
			from := uint64(rng.IntN(int(m.versions[s]) + 2))
			var want []Envelope
			for _, e := range m.events {
				if e.Stream == s && e.Version >= max(from, 1) {
					want = append(want, e)
				}
			}
			var got []Envelope
			for e, err := range l.Stream(ctx, s, from) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, e)
			}
			if d := envsDiff(want, got); d != "" {
				t.Fatalf("step %d: Stream(%s, %d) (-want +got):\n%s", step, s, from, d)
			}
			if v, err := l.StreamVersion(ctx, s); err != nil || v != m.versions[s] {
				t.Fatalf("step %d: StreamVersion(%s) = %d, %v; want %d", step, s, v, err, m.versions[s])
			}
		case op < 14: // a range
			from := uint64(rng.IntN(len(m.events) + 2))
			to := uint64(rng.IntN(len(m.events) + 2))
			var want []Envelope
			for _, e := range m.events {
				if e.Seq >= max(from, 1) && e.Seq <= to {
					want = append(want, e)
				}
			}
			var got []Envelope
			for e, err := range l.Range(ctx, from, to) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, e)
			}
			if d := envsDiff(want, got); d != "" {
				t.Fatalf("step %d: Range(%d, %d) (-want +got):\n%s", step, from, to, d)
			}
		case op < 16: // SeqAt at event times and between them
			if len(m.events) == 0 {
				continue
			}
			at := m.events[rng.IntN(len(m.events))].Time.Add(time.Duration(rng.IntN(3)-1) * time.Microsecond)
			want := uint64(0)
			for _, e := range m.events {
				if !e.Time.After(at) {
					want = e.Seq
				}
			}
			if got, err := l.SeqAt(t.Context(), at); err != nil || got != want {
				t.Fatalf("step %d: SeqAt(%v) = %d, %v; want %d", step, at, got, err, want)
			}
		case op < 17: // invalid input changes nothing
			_, err := l.Append(ctx, "a", ExpectAny, Envelope{Data: []byte{0xc0}})
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("step %d: empty type: %v", step, err)
			}
		case op < 20: // retry an append with IDs: written, changed, partial, or refused
			last := l.LastSeq()
			switch c := rng.IntN(4); {
			case c == 3 && len(m.refused) > 0:
				// Nothing of it was written: appended as new (without the
				// expectations and times that got it refused).
				i := rng.IntN(len(m.refused))
				reqs := m.refused[i]
				m.refused = append(m.refused[:i], m.refused[i+1:]...)
				for ri := range reqs {
					reqs[ri].Expect = ExpectAny
					for j := range reqs[ri].Events {
						reqs[ri].Events[j].Time = time.Time{}
					}
				}
				appendChecked(step, reqs, true, false)
			case len(m.written) == 0:
			case c == 0: // the very append again: its positions, nothing written
				w := m.written[rng.IntN(len(m.written))]
				reqs := append([]AppendRequest(nil), w.reqs...)
				if rng.IntN(2) == 0 {
					for ri := range reqs {
						reqs[ri].Expect = ExpectAny
					}
				}
				pos, err := l.AppendBatch(ctx, reqs)
				if err != nil {
					t.Fatalf("step %d: retry: %v", step, err)
				}
				for i := range pos {
					if p, want := pos[i], w.pos[i]; p.Seq != want.Seq || p.Version != want.Version || !p.Time.Equal(want.Time) {
						t.Fatalf("step %d: retry returned %+v, the append %+v", step, pos, w.pos)
					}
				}
			default: // changed content, or a partial overlap: refused
				w := m.written[rng.IntN(len(m.written))]
				var reqs []AppendRequest
				if c == 1 {
					for _, r := range w.reqs {
						r.Events = append([]Envelope(nil), r.Events...)
						reqs = append(reqs, r)
					}
					e := &reqs[rng.IntN(len(reqs))].Events[0]
					e.Data = []byte{0xa1, 'Z'}
				} else {
					r := w.reqs[rng.IntN(len(w.reqs))]
					reqs = []AppendRequest{{Stream: r.Stream, Expect: ExpectAny, Events: []Envelope{r.Events[0], {ID: newID(), Type: "t0"}}}}
				}
				if _, err := l.AppendBatch(ctx, reqs); !errors.Is(err, ErrDuplicateID) {
					t.Fatalf("step %d: want ErrDuplicateID, got %v", step, err)
				}
			}
			if l.LastSeq() != uint64(len(m.events)) {
				t.Fatalf("step %d: the log is at seq %d (before the retry %d), the model at %d", step, l.LastSeq(), last, len(m.events))
			}
		case op < 22: // a category from a seq
			c := categories[rng.IntN(len(categories))]
			from := uint64(rng.IntN(len(m.events) + 2))
			var want []Envelope
			for _, e := range m.events {
				if strings.HasPrefix(e.Stream, c+CategorySeparator) && e.Seq >= max(from, 1) {
					want = append(want, e)
				}
			}
			var got []Envelope
			for e, err := range l.Category(ctx, c, from) {
				if c == "inv-a" {
					if !errors.Is(err, ErrInvalid) {
						t.Fatalf("step %d: Category(%q): %v, want ErrInvalid", step, c, err)
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, e)
			}
			if c == "inv-a" {
				continue
			}
			if d := envsDiff(want, got); d != "" {
				t.Fatalf("step %d: Category(%s, %d) (-want +got):\n%s", step, c, from, d)
			}
		case op < 23: // reopen (sometimes read-only first)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if rng.IntN(2) == 0 {
				ro, err := openFS(vfs.ReadOnly(mem), opts, true)
				if err != nil {
					t.Fatal(err)
				}
				if d := envsDiff(m.events, readAll(t, ro)); d != "" {
					t.Fatalf("step %d: read-only view (-want +got):\n%s", step, d)
				}
				ro.Close()
			}
			l = openMem(t, mem, opts)
		default: // everything
			if d := envsDiff(m.events, readAll(t, l)); d != "" {
				t.Fatalf("step %d: Events (-want +got):\n%s", step, d)
			}
			if s := l.Stats(); s.Events != uint64(len(m.events)) || s.Streams != uint64(len(m.versions)) {
				t.Fatalf("step %d: stats %d events %d streams, want %d, %d", step, s.Events, s.Streams, len(m.events), len(m.versions))
			}
		}
	}
}
