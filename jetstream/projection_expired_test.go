package jetstream_test

import (
	"context"
	"errors"
	"iter"
	"maps"
	"math"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// goneLog is a JetStream log whose events can read as gone, as a file
// log's do: expired by retention (expire) or deleted with their stream
// (deleteStream). A JetStream log itself never loses an event (deletes
// and purges are denied, no limits, and a gap in its seqs is an error),
// but its snapshot store keeps checkpoints of views folded from logs that
// do (snapshot.Meta.Unfolded), and a projection must run on it as on the
// file log; goneLog models the file log's behaviour over a real stream.
// A deletion is an event of the stream delStream (meta "stream": the
// deleted stream), which goneLog yields as the file log's deletion marker
// (event.DeletionsStream); every earlier event of the deleted stream then
// reads as gone. It serves projection.Source, replay.ScopedDeletions and
// replay.Expirations, as *evlog.Log does.
type goneLog struct {
	*evjs.Log
	mu      sync.Mutex
	expired map[uint64]string // seq -> stream of the events expired
}

const delStream = "sys-deletion"

var _ interface {
	projection.Source
	replay.ScopedDeletions
	replay.Expirations
} = (*goneLog)(nil)

func newGoneLog(l *evjs.Log) *goneLog { return &goneLog{Log: l, expired: map[uint64]string{}} }

// expire makes the event at seq (of stream) read as expired.
func (g *goneLog) expire(seq uint64, stream string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expired[seq] = stream
}

// deleteStream deletes stream: it appends the marker and returns its seq.
func (g *goneLog) deleteStream(t *testing.T, stream string) uint64 {
	t.Helper()
	pos, err := g.Log.Append(t.Context(), delStream, evlog.ExpectAny, event.Envelope{Type: "deleted", Meta: map[string]string{"stream": stream}})
	if err != nil {
		t.Fatal(err)
	}
	return pos.Seq
}

// deletions returns, per deleted stream, the seq of its newest marker up
// to seq to, and the markers in seq order.
func (g *goneLog) deletions(ctx context.Context, to uint64) (map[string]uint64, []event.Envelope, error) {
	var markers []event.Envelope
	for e, err := range g.Log.Stream(ctx, delStream, 1) {
		if err != nil {
			return nil, nil, err
		}
		if e.Seq > to {
			break
		}
		markers = append(markers, e)
	}
	del := map[string]uint64{}
	for _, m := range markers {
		del[m.Meta["stream"]] = m.Seq
	}
	return del, markers, nil
}

// filter yields the events of seq that do not read as gone, deletion
// markers as event.DeletionsStream events.
func (g *goneLog) filter(ctx context.Context, events iter.Seq2[event.Envelope, error]) iter.Seq2[event.Envelope, error] {
	return func(yield func(event.Envelope, error) bool) {
		for e, err := range events {
			if err != nil {
				yield(e, err)
				return
			}
			del, _, derr := g.deletions(ctx, math.MaxUint64)
			if derr != nil {
				yield(event.Envelope{}, derr)
				return
			}
			g.mu.Lock()
			_, expired := g.expired[e.Seq]
			g.mu.Unlock()
			switch {
			case expired || del[e.Stream] > e.Seq:
				continue
			case e.Stream == delStream:
				e.Stream = event.DeletionsStream
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

func (g *goneLog) Range(ctx context.Context, from, to uint64) iter.Seq2[event.Envelope, error] {
	return g.filter(ctx, g.Log.Range(ctx, from, to))
}

func (g *goneLog) Stream(ctx context.Context, stream string, fromVersion uint64) iter.Seq2[event.Envelope, error] {
	return g.filter(ctx, g.Log.Stream(ctx, stream, fromVersion))
}

func (g *goneLog) Subscribe(ctx context.Context, from uint64) iter.Seq2[event.Envelope, error] {
	return g.filter(ctx, g.Log.Subscribe(ctx, from))
}

// LastDeletionIn serves replay.ScopedDeletions.
func (g *goneLog) LastDeletionIn(ctx context.Context, in func(string) bool) (uint64, string, error) {
	_, markers, err := g.deletions(ctx, math.MaxUint64)
	if err != nil {
		return 0, "", err
	}
	for i := len(markers) - 1; i >= 0; i-- {
		if s := markers[i].Meta["stream"]; in(s) {
			return markers[i].Seq, s, nil
		}
	}
	return 0, "", nil
}

// FirstExpired serves replay.Expirations.
func (g *goneLog) FirstExpired(_ context.Context, from, to uint64, in func(string) bool) (uint64, bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	first, found := uint64(0), false
	for seq, stream := range g.expired {
		if seq >= from && seq <= to && in(stream) && (!found || seq < first) {
			first, found = seq, true
		}
	}
	return first, found, nil
}

// acctView counts the events of each stream of category acct.
var acctView = projection.Projection[map[string]int, event.Envelope]{
	Name:          "acct",
	SchemaVersion: 1,
	Categories:    []string{"acct"},
	Init:          func() map[string]int { return map[string]int{} },
	Apply: func(m map[string]int, e event.Envelope) map[string]int {
		m[e.Stream]++
		return m
	},
}

// TestProjectionRebuiltAfterExpiryOnJetStream: a projection over a
// JetStream log, its checkpoints in the JetStream snapshot store, is
// rebuilt (Rebuild) after an event of its scope expired. The rebuilt
// view never folded that event, and its checkpoint must say so
// (snapshot.Meta.Unfolded, kept by the JetStream store's record): a later
// deletion in the view's scope then folds again losing nothing, by the
// same runner or by a runner restarted from that checkpoint (the deletion
// made while it ran or while it was stopped), and so does the next
// deletion; no replay.ErrHistoryLost. The root package's
// TestRunnerRebuiltViewDeletionNoFalseLoss checks the same on the file
// log.
func TestProjectionRebuiltAfterExpiryOnJetStream(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		restart, deleteStopped bool
	}{
		{name: "same runner"},
		{name: "restart, deletion while running", restart: true},
		{name: "restart, deletion while stopped", restart: true, deleteStopped: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t)
			guard := guarded(t, hangGuard)
			l := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1})
			g := newGoneLog(l)
			var last uint64
			for _, stream := range []string{"acct-1", "acct-2", "acct-2", "acct-3"} {
				pos, err := l.Append(guard, stream, evlog.ExpectAny, ev("e"))
				if err != nil {
					t.Fatal(err)
				}
				last = pos.Seq
			}
			g.expire(2, "acct-2") // as a MaxCount 1 retention would, by seq 3
			store := snapshotsOf(t, l)
			decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }

			r := projection.NewRunner(acctView, g, store, decode, projection.RunnerOptions{})
			ctx, cancel := context.WithCancel(guard)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- r.Rebuild(ctx) }()
			if err := r.WaitFor(guard, last); err != nil {
				t.Fatal(err)
			}
			if tc.restart {
				cancel() // the final checkpoint is of the rebuilt view
				if err := receive(t, done, "Rebuild's end"); !errors.Is(err, context.Canceled) {
					t.Fatalf("Rebuild ended with %v", err)
				}
				cps, err := candidates(store, "projection/acct", math.MaxUint64)
				if err != nil {
					t.Fatal(err)
				}
				if len(cps) == 0 || cps[0].Seq != last {
					t.Fatalf("checkpoints after the Rebuild: %+v; want the newest at seq %d", cps, last)
				}
				want := snapshot.MakeSeqRanges(snapshot.SeqRange{From: 2, To: 2})
				if cps[0].Unfolded != want {
					t.Errorf("the rebuilt view's checkpoint has Unfolded %v, want %v (seq 2 expired before it was folded)", cps[0].Unfolded, want)
				}
			}
			var del uint64
			if tc.deleteStopped {
				del = g.deleteStream(t, "acct-3")
			}
			if tc.restart {
				r = projection.NewRunner(acctView, g, store, decode, projection.RunnerOptions{})
				ctx, cancel = context.WithCancel(guard)
				defer cancel()
				go func() { done <- r.Run(ctx) }()
				if !tc.deleteStopped {
					if err := r.WaitFor(guard, last); err != nil {
						t.Fatalf("restart: %v", err)
					}
				}
			}
			if !tc.deleteStopped {
				del = g.deleteStream(t, "acct-3")
			}
			if err := r.WaitFor(guard, del); err != nil {
				t.Fatalf("WaitFor(%d), the deletion after the Rebuild: %v; want the view folded again (seq 2 expired before the rebuilt view folded it)", del, err)
			}
			var got map[string]int
			if err := r.View(func(v map[string]int, _ uint64) { got = maps.Clone(v) }); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]int{"acct-1": 1, "acct-2": 1}, got); diff != "" {
				t.Errorf("view after the deletion (-want +got):\n%s", diff)
			}
			// And the next deletion too: the refolded view records what it
			// did not fold.
			del = g.deleteStream(t, "acct-1")
			if err := r.WaitFor(guard, del); err != nil {
				t.Fatalf("WaitFor(%d), the second deletion: %v", del, err)
			}
			// A restart from the newest checkpoint does not report the
			// history lost either.
			cancel()
			if err := receive(t, done, "the runner's end"); !errors.Is(err, context.Canceled) {
				t.Fatalf("runner ended with %v", err)
			}
			r = projection.NewRunner(acctView, g, store, decode, projection.RunnerOptions{})
			ctx, cancel = context.WithCancel(guard)
			defer cancel()
			go func() { done <- r.Run(ctx) }()
			if err := r.WaitFor(guard, del); err != nil {
				t.Fatalf("restart after the deletions: %v", err)
			}
			if err := r.View(func(v map[string]int, _ uint64) { got = maps.Clone(v) }); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]int{"acct-2": 1}, got); diff != "" {
				t.Errorf("view after a restart after both deletions (-want +got):\n%s", diff)
			}
			cancel()
			if err := receive(t, done, "the last runner's end"); !errors.Is(err, context.Canceled) {
				t.Fatalf("the last runner ended with %v", err)
			}
		})
	}
}
