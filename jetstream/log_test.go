package jetstream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
	"github.com/evlog/evlog/snapshot"
)

func ev(typ string) event.Envelope { return event.Envelope{Type: typ} }

func allEvents(t *testing.T, l *evjs.Log) []event.Envelope {
	t.Helper()
	var out []event.Envelope
	for e, err := range l.Range(t.Context(), 1, l.LastSeq()) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestBatchLimit: JetStream commits at most 1,000 messages atomically; a
// larger append is refused whole, never split.
func TestBatchLimit(t *testing.T) {
	s := startServer(t)
	l := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1})
	big := make([]event.Envelope, evjs.MaxBatch+1)
	for i := range big {
		big[i] = ev("e")
	}
	_, err := l.AppendBatch(t.Context(), []evlog.AppendRequest{
		{Stream: "a", Expect: evlog.ExpectAny, Events: big[:500]},
		{Stream: "b", Expect: evlog.ExpectAny, Events: big[500:]},
	})
	if !errors.Is(err, evjs.ErrBatchTooLarge) || !errors.Is(err, evlog.ErrInvalid) {
		t.Fatalf("AppendBatch of %d events = %v, want ErrBatchTooLarge and ErrInvalid", len(big), err)
	}
	if got := l.LastSeq(); got != 0 {
		t.Fatalf("a refused batch wrote %d events", got)
	}
	pos, err := l.Append(t.Context(), "a", evlog.ExpectNoStream, big[:evjs.MaxBatch]...)
	if err != nil {
		t.Fatalf("Append of exactly %d events: %v", evjs.MaxBatch, err)
	}
	if pos.Seq != evjs.MaxBatch || pos.Version != evjs.MaxBatch {
		t.Errorf("position %+v, want seq and version %d", pos, evjs.MaxBatch)
	}
}

// TestIdempotentRetry: an append repeated with the same event IDs (a
// caller retrying after a crash or a timeout) is stored once and reports
// the original positions, whatever its expectation.
func TestIdempotentRetry(t *testing.T) {
	s := startServer(t)
	l := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1})
	ctx := t.Context()
	one := event.Envelope{Type: "e", ID: "order-1/created"}
	first, err := l.Append(ctx, "o", evlog.ExpectNoStream, one)
	if err != nil {
		t.Fatal(err)
	}
	for _, expect := range []event.Expectation{evlog.ExpectNoStream, evlog.ExpectAny} {
		again, err := l.Append(ctx, "o", expect, one)
		if err != nil {
			t.Fatalf("retry expecting %v: %v", expect, err)
		}
		if d := cmp.Diff(first, again); d != "" {
			t.Errorf("retry expecting %v: position (-first +retry):\n%s", expect, d)
		}
	}
	batch := func() []evlog.AppendRequest {
		return []evlog.AppendRequest{
			{Stream: "o", Expect: evlog.ExpectVersion(1), Events: []event.Envelope{{Type: "e", ID: "o-2"}, {Type: "e", ID: "o-3"}}},
			{Stream: "p", Expect: evlog.ExpectNoStream, Events: []event.Envelope{{Type: "e", ID: "p-1"}}},
		}
	}
	bpos, err := l.AppendBatch(ctx, batch())
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.AppendBatch(ctx, batch())
	if err != nil {
		t.Fatalf("batch retry: %v", err)
	}
	if d := cmp.Diff(bpos, again); d != "" {
		t.Errorf("batch retry positions (-first +retry):\n%s", d)
	}
	if got := len(allEvents(t, l)); got != 4 {
		t.Errorf("log holds %d events after retries, want 4", got)
	}
	// An ID reused for a different event is not mistaken for a retry.
	_, err = l.Append(ctx, "q", evlog.ExpectAny, event.Envelope{Type: "e", ID: "p-1"})
	if !errors.Is(err, evlog.ErrInvalid) {
		t.Errorf("append reusing another event's ID = %v, want ErrInvalid", err)
	}
}

// lossyJS publishes for real but reports a timeout for the first n
// single-message publishes: an append whose answer was lost. With drop
// set, it reports the timeout without publishing: a request lost on its
// way, which the client cannot tell from a lost answer.
type lossyJS struct {
	jetstream.JetStream
	lose atomic.Int32
	drop atomic.Bool
}

func (j *lossyJS) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if j.drop.Load() {
		return nil, nats.ErrTimeout
	}
	ack, err := j.JetStream.PublishMsg(ctx, m, opts...)
	if err == nil && j.lose.Add(-1) >= 0 {
		return nil, nats.ErrTimeout
	}
	return ack, err
}

// TestUnknownOutcomeResolved: a committed append whose answer is lost is
// retried with the same ID and reported once, as committed, even when
// every answer is lost (the stream shows it committed); when every
// request is lost the caller gets ErrUnknownOutcome.
func TestUnknownOutcomeResolved(t *testing.T) {
	s := startServer(t)
	lossy := &lossyJS{JetStream: connect(t, s.ClientURL())}
	name := newLogName()
	l := openLog(t, lossy, evjs.Config{Name: name, Replicas: 1, Retries: 2})
	ctx := t.Context()
	lossy.lose.Store(1)
	pos, err := l.Append(ctx, "s", evlog.ExpectNoStream, ev("a"))
	if err != nil {
		t.Fatalf("append with a lost answer: %v", err)
	}
	if pos.Seq != 1 || pos.Version != 1 {
		t.Errorf("position %+v, want seq 1 version 1", pos)
	}
	lossy.lose.Store(1)
	pos, err = l.Append(ctx, "s", evlog.ExpectAny, ev("b"))
	if err != nil || pos.Seq != 2 {
		t.Fatalf("ExpectAny append with a lost answer: %+v, %v", pos, err)
	}
	if got := len(allEvents(t, l)); got != 2 {
		t.Fatalf("log holds %d events, want 2 (each lost-answer append exactly once)", got)
	}
	lossy.lose.Store(100)
	pos, err = l.Append(ctx, "t", evlog.ExpectAny, ev("c"))
	if err != nil || pos.Seq != 3 {
		t.Fatalf("append whose answers are all lost: %+v, %v; want seq 3 (it was committed)", pos, err)
	}
	lossy.drop.Store(true)
	_, err = l.Append(ctx, "t", evlog.ExpectAny, ev("d"))
	if !errors.Is(err, evjs.ErrUnknownOutcome) {
		t.Fatalf("append whose requests are all lost = %v, want ErrUnknownOutcome", err)
	}
	if got := len(allEvents(t, l)); got != 3 {
		t.Fatalf("log holds %d events, want 3", got)
	}
}

// TestTimeNeverDecreasesAcrossWriters: two writers whose clocks disagree
// by an hour append alternately; the recorded times never decrease, the
// slow clock's events are clamped to the last recorded time.
func TestTimeNeverDecreasesAcrossWriters(t *testing.T) {
	s := startServer(t)
	js := connect(t, s.ClientURL())
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var fastTick, slowTick atomic.Int64
	fast := openLog(t, js, evjs.Config{Name: "clocks", Replicas: 1, Clock: func() time.Time {
		return base.Add(time.Hour + time.Duration(fastTick.Add(1))*time.Second)
	}})
	slow := openLog(t, js, evjs.Config{Name: "clocks", Replicas: 1, Clock: func() time.Time {
		return base.Add(time.Duration(slowTick.Add(1)) * time.Second)
	}})
	ctx := t.Context()
	for i := range 6 {
		w := fast
		if i%2 == 1 {
			w = slow
		}
		if _, err := w.Append(ctx, fmt.Sprint("s", i%3), evlog.ExpectAny, ev("e")); err != nil {
			t.Fatal(err)
		}
	}
	// An explicit time before the last recorded one is refused, even by
	// a writer that had not seen that event yet.
	fresh := openLog(t, js, evjs.Config{Name: "clocks", Replicas: 1})
	if _, err := fresh.Append(ctx, "x", evlog.ExpectAny, event.Envelope{Type: "e", Time: base}); !errors.Is(err, evlog.ErrTimeBackwards) {
		t.Errorf("explicit earlier time = %v, want ErrTimeBackwards", err)
	}
	var prev time.Time
	for _, e := range allEvents(t, slow) {
		if e.Time.Before(prev) {
			t.Errorf("seq %d recorded at %v, before seq %d's %v", e.Seq, e.Time, e.Seq-1, prev)
		}
		prev = e.Time
	}
	if fast.LogID() != slow.LogID() {
		t.Error("two handles on one log report different log IDs")
	}
}

// TestOpenRefusesUnsafeStream: an existing stream whose limits would
// delete events, whose storage does not survive a restart (memory), or
// that lacks atomic publish is not used.
func TestOpenRefusesUnsafeStream(t *testing.T) {
	s := startServer(t)
	js := connect(t, s.ClientURL())
	for _, tc := range []struct {
		name   string
		modify func(*jetstream.StreamConfig)
	}{
		{"aged", func(c *jetstream.StreamConfig) { c.MaxAge = time.Hour }},
		{"memory", func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage }},
		{"noatomic", func(c *jetstream.StreamConfig) { c.AllowAtomicPublish = false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The configuration Open creates, but for one setting.
			c := jetstream.StreamConfig{
				Name: "EVLOG_" + tc.name, Subjects: []string{"evlog." + tc.name + ".>"},
				Storage: jetstream.FileStorage, Replicas: 1, Discard: jetstream.DiscardNew,
				DenyDelete: true, DenyPurge: true, AllowDirect: true, AllowAtomicPublish: true,
				Metadata: map[string]string{"evlog_log_id": "00112233445566778899aabbccddeeff"},
			}
			tc.modify(&c)
			if _, err := js.CreateStream(t.Context(), c); err != nil {
				t.Fatal(err)
			}
			if _, err := evjs.Open(t.Context(), js, evjs.Config{Name: tc.name, Replicas: 1}); !errors.Is(err, evjs.ErrConfig) {
				t.Errorf("Open on a stream with %s: %v, want ErrConfig", tc.name, err)
			}
		})
	}
	if _, err := evjs.Open(t.Context(), js, evjs.Config{Name: "bad.name"}); err == nil {
		t.Error("Open accepted a log name with a dot")
	}
}

// TestLargeSnapshot: a state above the KV inline limit goes to the object
// store, loads back verified, and a damaged object is a CorruptError
// (which replay treats as a fallback).
func TestLargeSnapshot(t *testing.T) {
	s := startServer(t)
	js := connect(t, s.ClientURL())
	l := openLog(t, js, evjs.Config{Replicas: 1})
	ctx := t.Context()
	pos, err := l.Append(ctx, "s", evlog.ExpectAny, ev("e"))
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	state := bytes.Repeat([]byte("0123456789abcdef"), 200<<10/16) // 200 KiB
	m, err := snaps.Save(ctx, snapshot.Meta{Name: "big", LogID: l.LogID(), Seq: pos.Seq, Time: pos.Time}, state)
	if err != nil {
		t.Fatal(err)
	}
	got, err := snaps.Load(ctx, m)
	if err != nil || !bytes.Equal(got, state) {
		t.Fatalf("Load of a 200 KiB snapshot: %d bytes, %v", len(got), err)
	}
	obs, err := js.ObjectStore(ctx, l.StreamName()+"_SNAPSHOTS")
	if err != nil {
		t.Fatal(err)
	}
	var name string
	for info, err := range listObjects(t, obs) {
		if err != nil {
			t.Fatal(err)
		}
		name = info
	}
	if name == "" {
		t.Fatal("the large state is not in the object store")
	}
	if _, err := obs.PutBytes(ctx, name, state[:len(state)-1]); err != nil {
		t.Fatal(err)
	}
	if _, err := snaps.Load(ctx, m); !errors.Is(err, snapshot.ErrCorrupt) {
		t.Errorf("Load of a damaged state = %v, want snapshot.ErrCorrupt", err)
	}
	removed, err := snaps.Prune(ctx, "big", snapshot.PrunePolicy{KeepSince: pos.Time.Add(time.Hour)})
	if err != nil || len(removed) != 0 {
		t.Errorf("Prune keeping the newest before KeepSince removed %v, %v", removed, err)
	}
	if err := snaps.Remove(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := snaps.Load(ctx, m); !errors.Is(err, snapshot.ErrNotFound) {
		t.Errorf("Load after Remove = %v, want ErrNotFound", err)
	}
}

func listObjects(t *testing.T, obs jetstream.ObjectStore) func(func(string, error) bool) {
	return func(yield func(string, error) bool) {
		ctx, cancel := context.WithTimeout(t.Context(), hangGuard) // List has no bound of its own
		defer cancel()
		infos, err := obs.List(ctx)
		if err != nil {
			yield("", err)
			return
		}
		for _, i := range infos {
			if !yield(i.Name, nil) {
				return
			}
		}
	}
}

// TestStreamFromVersion: Stream from any version gives the same events on
// a handle that knows where earlier versions are (from its appends and
// reads) as on a fresh one that scans from the start.
func TestStreamFromVersion(t *testing.T) {
	s := startServer(t)
	js := connect(t, s.ClientURL())
	name := newLogName()
	a := openLog(t, js, evjs.Config{Name: name, Replicas: 1})
	ctx := t.Context()
	for i := range 60 {
		if _, err := a.Append(ctx, fmt.Sprint("s", i%3), evlog.ExpectAny, ev("e")); err != nil {
			t.Fatal(err)
		}
	}
	stream := func(l *evjs.Log, from uint64) []uint64 {
		var out []uint64
		for e, err := range l.Stream(ctx, "s1", from) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e.Seq)
		}
		return out
	}
	for from := uint64(0); from <= 21; from++ {
		fresh := openLog(t, js, evjs.Config{Name: name, Replicas: 1})
		want := stream(fresh, from)
		if got := stream(a, from); !cmp.Equal(want, got) {
			t.Errorf("Stream(s1, %d) = %v on the appending handle, %v on a fresh one", from, got, want)
		}
		if n := max(int(from), 1); len(want) != 20-n+1 && from <= 20 {
			t.Errorf("Stream(s1, %d) yielded %d events", from, len(want))
		}
	}
}
