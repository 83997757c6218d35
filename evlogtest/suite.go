package evlogtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// Run runs the conformance suite, each check as a subtest on a log of its
// own from newBackend.
func Run(t *testing.T, newBackend NewBackend) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, Backend)
	}{
		{"Empty", testEmpty},
		{"AppendAndRead", testAppendAndRead},
		{"Bounds", testBounds},
		{"Expectations", testExpectations},
		{"Invalid", testInvalid},
		{"Batch", testBatch},
		{"Race", testRace},
		{"Time", testTime},
		{"SubscribeHistoryThenLive", testSubscribe},
		{"SubscribeConcurrentWriter", testSubscribeConcurrent},
		{"Snapshots", testSnapshots},
		{"SnapshotFallbacks", testFallbacks},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newBackend(t)) })
	}
}

// t0 is the first recorded time the suite uses.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

var envelopeCmp = cmp.Options{
	cmpopts.EquateEmpty(),
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
}

func ev(typ string, data string, at time.Time) event.Envelope {
	return event.Envelope{Type: typ, Time: at, Data: []byte(data)}
}

// collect reads an iterator to its end, failing on an error.
func collect(t *testing.T, seq func(func(event.Envelope, error) bool)) []event.Envelope {
	t.Helper()
	var out []event.Envelope
	for e, err := range seq {
		if err != nil {
			t.Fatalf("iteration failed after %d events: %v", len(out), err)
		}
		out = append(out, e)
	}
	return out
}

func seqs(es []event.Envelope) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func mustAppend(t *testing.T, l Log, stream string, expect event.Expectation, es ...event.Envelope) event.Position {
	t.Helper()
	pos, err := l.Append(t.Context(), stream, expect, es...)
	if err != nil {
		t.Fatalf("Append(%q, %v): %v", stream, expect, err)
	}
	return pos
}

func streamVersion(t *testing.T, l Log, stream string) uint64 {
	t.Helper()
	var v uint64
	for e, err := range l.Stream(t.Context(), stream, 1) {
		if err != nil {
			t.Fatalf("Stream(%q): %v", stream, err)
		}
		v = e.Version
	}
	return v
}

func testEmpty(t *testing.T, b Backend) {
	l := b.Log
	if got := l.LastSeq(); got != 0 {
		t.Errorf("LastSeq of a new log = %d, want 0", got)
	}
	if got, err := l.SeqAt(t.Context(), t0.Add(1000*time.Hour)); err != nil || got != 0 {
		t.Errorf("SeqAt on a new log = %d, %v; want 0, nil", got, err)
	}
	if got := collect(t, l.Range(t.Context(), 1, 10)); len(got) != 0 {
		t.Errorf("Range on a new log yielded %d events", len(got))
	}
	if got := collect(t, l.Stream(t.Context(), "nothing", 1)); len(got) != 0 {
		t.Errorf("Stream on a new log yielded %d events", len(got))
	}
	var zero [16]byte
	if l.LogID() == zero {
		t.Error("LogID is all zeros; snapshots of different logs could not be told apart")
	}
}

func testAppendAndRead(t *testing.T, b Backend) {
	l := b.Log
	a1 := event.Envelope{Type: "created", SchemaVersion: 2, ID: "id-1", Time: t0,
		Meta: map[string]string{"user": "ann", "trace": "x.y z"}, Data: []byte{0x81, 0xa1, 'k', 0x01}}
	a2 := ev("renamed", "two", t0.Add(time.Second))
	pos := mustAppend(t, l, "acct/1", event.ExpectNoStream, a1, a2)
	if d := cmp.Diff(event.Position{Seq: 2, Version: 2, Time: t0.Add(time.Second)}, pos, envelopeCmp); d != "" {
		t.Errorf("position of the first append (-want +got):\n%s", d)
	}
	// Names the subject mapping of a networked backend must round-trip.
	odd := "orders.eu/*> ünïcødé-\u00a0x"
	pos = mustAppend(t, l, odd, event.ExpectAny, ev("placed", "three", t0.Add(2*time.Second)))
	if pos.Seq != 3 || pos.Version != 1 {
		t.Errorf("position of the append to a second stream = %+v, want seq 3 version 1", pos)
	}
	pos = mustAppend(t, l, "acct/1", event.ExpectVersion(2), ev("closed", "", t0.Add(3*time.Second)))
	if pos.Seq != 4 || pos.Version != 3 {
		t.Errorf("position of the third event of acct/1 = %+v, want seq 4 version 3", pos)
	}
	if got := l.LastSeq(); got != 4 {
		t.Errorf("LastSeq = %d, want 4", got)
	}
	want := []event.Envelope{
		{Seq: 1, Stream: "acct/1", Version: 1, Type: "created", SchemaVersion: 2, ID: "id-1", Time: t0, Meta: a1.Meta, Data: a1.Data},
		{Seq: 2, Stream: "acct/1", Version: 2, Type: "renamed", SchemaVersion: 1, Time: t0.Add(time.Second), Data: []byte("two")},
		{Seq: 3, Stream: odd, Version: 1, Type: "placed", SchemaVersion: 1, Time: t0.Add(2 * time.Second), Data: []byte("three")},
		{Seq: 4, Stream: "acct/1", Version: 3, Type: "closed", SchemaVersion: 1, Time: t0.Add(3 * time.Second)},
	}
	// IDs are the backend's to fill in when the caller gives none.
	ignoreGenerated := cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".ID"
	}, cmp.Comparer(func(a, b string) bool { return a == "" || b == "" || a == b }))
	got := collect(t, l.Range(t.Context(), 1, 100))
	if d := cmp.Diff(want, got, envelopeCmp, ignoreGenerated); d != "" {
		t.Errorf("Range(1, 100) (-want +got):\n%s", d)
	}
	got = collect(t, l.Stream(t.Context(), "acct/1", 1))
	if d := cmp.Diff([]event.Envelope{want[0], want[1], want[3]}, got, envelopeCmp, ignoreGenerated); d != "" {
		t.Errorf("Stream(acct/1) (-want +got):\n%s", d)
	}
	got = collect(t, l.Stream(t.Context(), odd, 0))
	if d := cmp.Diff(want[2:3], got, envelopeCmp, ignoreGenerated); d != "" {
		t.Errorf("Stream(%q) (-want +got):\n%s", odd, d)
	}
	if got := collect(t, l.Stream(t.Context(), "acct", 1)); len(got) != 0 {
		t.Errorf("Stream(acct), a prefix of another stream's name, yielded %d events", len(got))
	}
	// Yielded envelopes are the caller's: modifying one changes nothing.
	first := collect(t, l.Range(t.Context(), 1, 1))
	first[0].Data[0] = 0
	first[0].Meta["user"] = "mallory"
	again := collect(t, l.Range(t.Context(), 1, 1))
	if d := cmp.Diff(want[:1], again, envelopeCmp, ignoreGenerated); d != "" {
		t.Errorf("modifying a yielded envelope changed the log (-want +got):\n%s", d)
	}
}

func testBounds(t *testing.T, b Backend) {
	l := b.Log
	for i := range 6 {
		mustAppend(t, l, fmt.Sprintf("s%d", i%2), event.ExpectAny, ev("e", fmt.Sprint(i), t0))
	}
	for _, tc := range []struct {
		from, to uint64
		want     []uint64
	}{
		{1, 6, []uint64{1, 2, 3, 4, 5, 6}},
		{0, 3, []uint64{1, 2, 3}},
		{3, 3, []uint64{3}},
		{4, 100, []uint64{4, 5, 6}},
		{5, 4, nil},
		{2, 0, nil},
		{7, 9, nil},
	} {
		if got := seqs(collect(t, l.Range(t.Context(), tc.from, tc.to))); !slices.Equal(got, tc.want) {
			t.Errorf("Range(%d, %d) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
	for _, tc := range []struct {
		from uint64
		want []uint64
	}{{0, []uint64{2, 4, 6}}, {1, []uint64{2, 4, 6}}, {2, []uint64{4, 6}}, {3, []uint64{6}}, {4, nil}} {
		if got := seqs(collect(t, l.Stream(t.Context(), "s1", tc.from))); !slices.Equal(got, tc.want) {
			t.Errorf("Stream(s1, %d) = %v, want %v", tc.from, got, tc.want)
		}
	}
	// Breaking out of an iteration early is fine and reads no further.
	for e, err := range l.Range(t.Context(), 1, 6) {
		if err != nil || e.Seq != 1 {
			t.Fatalf("first event of Range = %d, %v", e.Seq, err)
		}
		break
	}
	// A cancelled context ends an iteration with its error, never silently.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var err error
	for _, err = range l.Stream(ctx, "s0", 1) {
		if err != nil {
			break
		}
	}
	for _, e2 := range l.Range(ctx, 1, 6) {
		if e2 != nil {
			err = errors.Join(err, e2)
			break
		}
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("reads with a cancelled context ended with %v, want context.Canceled", err)
	}
}

func testExpectations(t *testing.T, b Backend) {
	l := b.Log
	mustAppend(t, l, "s", event.ExpectNoStream, ev("a", "", t0), ev("b", "", t0))
	for _, tc := range []struct {
		expect event.Expectation
		ok     bool
	}{
		{event.ExpectNoStream, false},
		{event.ExpectVersion(1), false},
		{event.ExpectVersion(3), false},
		{event.ExpectVersion(2), true},
		{event.ExpectVersion(2), false}, // the previous row moved it to 3
		{event.ExpectAny, true},
		{event.ExpectVersion(4), true},
	} {
		before, version := l.LastSeq(), streamVersion(t, l, "s")
		_, err := l.Append(t.Context(), "s", tc.expect, ev("c", "", t0))
		switch {
		case tc.ok && err != nil:
			t.Errorf("Append expecting %v at version %d: %v", tc.expect, version, err)
		case !tc.ok && !errors.Is(err, evlog.ErrVersionConflict):
			t.Errorf("Append expecting %v at version %d = %v, want ErrVersionConflict", tc.expect, version, err)
		case !tc.ok:
			if ce, ok := errors.AsType[*event.ConflictError](err); ok && ce.Actual != version {
				t.Errorf("ConflictError.Actual = %d, want %d", ce.Actual, version)
			}
			if l.LastSeq() != before || streamVersion(t, l, "s") != version {
				t.Errorf("a conflicting append wrote something: last seq %d -> %d", before, l.LastSeq())
			}
		}
	}
	if got := streamVersion(t, l, "s"); got != 5 {
		t.Errorf("stream version = %d, want 5", got)
	}
	// ExpectVersion(0) is ExpectNoStream.
	mustAppend(t, l, "fresh", event.ExpectVersion(0), ev("a", "", t0))
	if _, err := l.Append(t.Context(), "fresh", event.ExpectVersion(0), ev("a", "", t0)); !errors.Is(err, evlog.ErrVersionConflict) {
		t.Errorf("ExpectVersion(0) on an existing stream = %v, want ErrVersionConflict", err)
	}
}

func testInvalid(t *testing.T, b Backend) {
	l := b.Log
	mustAppend(t, l, "s", event.ExpectAny, ev("a", "", t0))
	for _, tc := range []struct {
		name   string
		stream string
		events []event.Envelope
	}{
		{"no events", "s", nil},
		{"empty stream name", "", []event.Envelope{ev("a", "", t0)}},
		{"empty type", "s", []event.Envelope{{Time: t0}}},
		{"seq set", "s", []event.Envelope{{Type: "a", Seq: 9, Time: t0}}},
		{"version set", "s", []event.Envelope{{Type: "a", Version: 9, Time: t0}}},
		{"other stream named", "s", []event.Envelope{{Type: "a", Stream: "t", Time: t0}}},
		{"valid then invalid", "s", []event.Envelope{ev("a", "", t0), {Time: t0}}},
		{"tab in the stream name", "s\tt", []event.Envelope{ev("a", "", t0)}},
		{"newline in the stream name", "s\n", []event.Envelope{ev("a", "", t0)}},
		{"NUL in the stream name", "s\x00", []event.Envelope{ev("a", "", t0)}},
		{"invalid UTF-8 in the stream name", "s\xff", []event.Envelope{ev("a", "", t0)}},
		{"control character in the type", "s", []event.Envelope{ev("a\x1b[0m", "", t0)}},
		{"bidi override in the type", "s", []event.Envelope{ev("a\u202e", "", t0)}},
	} {
		_, err := l.Append(t.Context(), tc.stream, event.ExpectAny, tc.events...)
		if !errors.Is(err, evlog.ErrInvalid) {
			t.Errorf("%s: Append = %v, want ErrInvalid", tc.name, err)
		}
	}
	if got := l.LastSeq(); got != 1 {
		t.Errorf("invalid appends wrote something: LastSeq = %d, want 1", got)
	}
	if _, err := l.AppendBatch(t.Context(), nil); !errors.Is(err, evlog.ErrInvalid) {
		t.Errorf("empty AppendBatch = %v, want ErrInvalid", err)
	}
}

func testBatch(t *testing.T, b Backend) {
	l := b.Log
	mustAppend(t, l, "a", event.ExpectNoStream, ev("x", "", t0))
	pos, err := l.AppendBatch(t.Context(), []evlog.AppendRequest{
		{Stream: "a", Expect: event.ExpectVersion(1), Events: []event.Envelope{ev("x", "a2", t0), ev("x", "a3", t0)}},
		{Stream: "b", Expect: event.ExpectNoStream, Events: []event.Envelope{ev("y", "b1", t0)}},
		{Stream: "c", Expect: event.ExpectAny, Events: []event.Envelope{ev("z", "c1", t0)}},
	})
	if err != nil {
		t.Fatalf("AppendBatch: %v", err)
	}
	want := []event.Position{{Seq: 3, Version: 3, Time: t0}, {Seq: 4, Version: 1, Time: t0}, {Seq: 5, Version: 1, Time: t0}}
	if d := cmp.Diff(want, pos, envelopeCmp); d != "" {
		t.Errorf("AppendBatch positions (-want +got):\n%s", d)
	}
	// One failed expectation anywhere: nothing of the batch is written.
	for _, bad := range []int{0, 1, 2} {
		reqs := []evlog.AppendRequest{
			{Stream: "a", Expect: event.ExpectVersion(3), Events: []event.Envelope{ev("x", "", t0)}},
			{Stream: "b", Expect: event.ExpectVersion(1), Events: []event.Envelope{ev("y", "", t0), ev("y", "", t0)}},
			{Stream: "new", Expect: event.ExpectNoStream, Events: []event.Envelope{ev("n", "", t0)}},
		}
		reqs[bad].Expect = event.ExpectVersion(7)
		_, err := l.AppendBatch(t.Context(), reqs)
		if !errors.Is(err, evlog.ErrVersionConflict) {
			t.Errorf("AppendBatch with part %d conflicting = %v, want ErrVersionConflict", bad, err)
		}
		if got := l.LastSeq(); got != 5 {
			t.Fatalf("a failed batch wrote something: LastSeq = %d, want 5", got)
		}
	}
	if got := seqs(collect(t, l.Stream(t.Context(), "new", 1))); len(got) != 0 {
		t.Errorf("a failed batch created stream new: %v", got)
	}
	got := collect(t, l.Range(t.Context(), 1, 5))
	var streams []string
	for _, e := range got {
		streams = append(streams, fmt.Sprintf("%s/%d", e.Stream, e.Version))
	}
	if d := cmp.Diff([]string{"a/1", "a/2", "a/3", "b/1", "c/1"}, streams); d != "" {
		t.Errorf("events after the batches (-want +got):\n%s", d)
	}
}

// testRace makes writers read the same version and then append together:
// exactly one wins each round, the others conflict and write nothing.
func testRace(t *testing.T, b Backend) {
	l := b.Log
	const writers, rounds = 16, 5
	ctx, cancel := guarded(t) // done.Wait below waits for every append
	defer cancel()
	for round := range rounds {
		version := streamVersion(t, l, "hot")
		var (
			ready, done sync.WaitGroup
			start       = make(chan struct{})
			errs        = make([]error, writers)
		)
		ready.Add(writers)
		done.Add(writers)
		for w := range writers {
			go func() {
				defer done.Done()
				ready.Done()
				<-start
				_, errs[w] = l.Append(ctx, "hot", event.ExpectVersion(version), ev("inc", fmt.Sprint(w), t0))
			}()
		}
		ready.Wait()
		close(start)
		done.Wait()
		hung(t, ctx, "round %d: the racing appends", round)
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, evlog.ErrVersionConflict):
				t.Fatalf("round %d: a racing append failed with %v, want nil or ErrVersionConflict", round, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d appends expecting version %d won, want exactly 1", round, wins, version)
		}
	}
	got := collect(t, l.Range(t.Context(), 1, 1000))
	if len(got) != rounds {
		t.Fatalf("log holds %d events after %d rounds", len(got), rounds)
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) || e.Version != uint64(i+1) {
			t.Errorf("event %d has seq %d version %d", i, e.Seq, e.Version)
		}
	}
}

func testTime(t *testing.T, b Backend) {
	l := b.Log
	at := []time.Time{t0, t0.Add(time.Hour), t0.Add(time.Hour), t0.Add(2 * time.Hour)}
	for i, tm := range at {
		mustAppend(t, l, fmt.Sprint("s", i), event.ExpectAny, ev("e", "", tm))
	}
	for _, tc := range []struct {
		at   time.Time
		want uint64
	}{
		{t0.Add(-time.Nanosecond), 0},
		{t0, 1},
		{t0.Add(time.Minute), 1},
		{t0.Add(time.Hour), 3},
		{t0.Add(90 * time.Minute), 3},
		{t0.Add(2 * time.Hour), 4},
		{t0.Add(1000 * time.Hour), 4},
	} {
		if got, err := l.SeqAt(t.Context(), tc.at); err != nil || got != tc.want {
			t.Errorf("SeqAt(%v) = %d, %v; want %d", tc.at, got, err, tc.want)
		}
	}
	// An explicit time before the last recorded one is refused.
	if _, err := l.Append(t.Context(), "s", event.ExpectAny, ev("e", "", t0)); !errors.Is(err, evlog.ErrTimeBackwards) {
		t.Errorf("Append at a time before the last one = %v, want ErrTimeBackwards", err)
	}
	// A zero time is stamped, never earlier than the last recorded one.
	pos := mustAppend(t, l, "s", event.ExpectAny, event.Envelope{Type: "e"})
	if pos.Time.Before(at[3]) {
		t.Errorf("a stamped time %v is earlier than the last recorded %v", pos.Time, at[3])
	}
	got := collect(t, l.Range(t.Context(), 5, 5))
	if len(got) != 1 || !got[0].Time.Equal(pos.Time) {
		t.Errorf("the stamped event reads back as %v, Append returned time %v", got, pos.Time)
	}
	var prev time.Time
	for _, e := range collect(t, l.Range(t.Context(), 1, 5)) {
		if e.Time.Before(prev) {
			t.Errorf("recorded time decreases at seq %d: %v after %v", e.Seq, e.Time, prev)
		}
		prev = e.Time
	}
}

// hangGuard bounds the suite's waits for what the suite itself causes (an
// event a subscriber waits for, the writer it waits on, a racing append).
// It is no timing assertion: far longer than anything takes on a loaded
// machine, it only turns a hang (an event that never comes) into a failure
// that says what was awaited, instead of a test binary killed by -timeout
// with every other result lost. A variable only for the suite's own test of
// it, which lowers it in a child process.
var hangGuard = 2 * time.Minute

// errHangGuard is the cause of a guarded context that hangGuard ended.
var errHangGuard = errors.New("evlogtest: hang guard expired: an awaited event never came")

// guarded returns t's context, ended with errHangGuard as its cause once
// hangGuard has passed.
func guarded(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(t.Context(), hangGuard, errHangGuard)
}

// hung fails t if ctx was ended by the hang guard, saying what never came.
func hung(t *testing.T, ctx context.Context, format string, args ...any) {
	t.Helper()
	if errors.Is(context.Cause(ctx), errHangGuard) {
		t.Fatalf("%s: still waiting after %v: %v", fmt.Sprintf(format, args...), hangGuard, errHangGuard)
	}
}

// testSubscribe subscribes in the middle of the history and appends more
// once the subscriber has caught up: it sees every event from its start
// exactly once, in order.
func testSubscribe(t *testing.T, b Backend) {
	l := b.Log
	for i := range 5 {
		mustAppend(t, l, "s", event.ExpectAny, ev("e", fmt.Sprint(i), t0))
	}
	ctx, cancel := guarded(t)
	defer cancel()
	caughtUp := make(chan struct{})
	appended := make(chan error, 1)
	go func() {
		select {
		case <-caughtUp:
		case <-ctx.Done():
			appended <- ctx.Err()
			return
		}
		var err error
		for i := range 4 {
			if _, err = l.Append(ctx, fmt.Sprint("live", i%2), event.ExpectAny, ev("e", "live", t0)); err != nil {
				cancel() // the subscriber waits for these events: end it
				break
			}
		}
		appended <- err
	}()
	var got []uint64
	var endErr error
	for e, err := range l.Subscribe(ctx, 3) {
		if err != nil {
			endErr = err
			break
		}
		got = append(got, e.Seq)
		if e.Seq == 5 {
			close(caughtUp)
		}
		if e.Seq == 9 {
			// The last live event can be delivered before its Append
			// returns (on a replicated backend): let the writer finish
			// (bounded: it appends with ctx).
			if err := <-appended; err != nil {
				hung(t, ctx, "Subscribe(3) saw %v, waiting for the live appends to return", got)
				t.Fatalf("live appends: %v", err)
			}
			cancel() // the iteration must now end with ctx's error
		}
	}
	hung(t, ctx, "Subscribe(3) saw %v, waiting for seqs up to 9 (the writer was started at seq 5)", got)
	select {
	case err := <-appended: // the writer failed and ended the subscription
		t.Fatalf("live appends: %v (subscriber saw %v)", err, got)
	default:
	}
	if d := cmp.Diff([]uint64{3, 4, 5, 6, 7, 8, 9}, got); d != "" {
		t.Errorf("Subscribe(3) seqs (-want +got):\n%s", d)
	}
	if !errors.Is(endErr, context.Canceled) {
		t.Errorf("Subscribe ended with %v after its context was cancelled, want context.Canceled", endErr)
	}
}

// testSubscribeConcurrent subscribes from the start while a writer
// appends: every event exactly once, in order, across the boundary
// between history and live events wherever it falls.
func testSubscribeConcurrent(t *testing.T, b Backend) {
	l := b.Log
	const n = 60
	ctx, cancel := guarded(t)
	defer cancel()
	writerDone := make(chan error, 1)
	mustAppend(t, l, "w0", event.ExpectAny, ev("e", "", t0))
	go func() {
		var err error
		for i := 1; i < n && err == nil; i++ {
			if i%10 == 0 {
				_, err = l.AppendBatch(ctx, []evlog.AppendRequest{
					{Stream: "w1", Expect: event.ExpectAny, Events: []event.Envelope{ev("e", "", t0)}},
					{Stream: "w2", Expect: event.ExpectAny, Events: []event.Envelope{ev("e", "", t0)}},
				})
				i++
				continue
			}
			_, err = l.Append(ctx, fmt.Sprint("w", i%3), event.ExpectAny, ev("e", "", t0))
		}
		if err != nil {
			cancel() // the subscriber waits for these events: end it
		}
		writerDone <- err
	}()
	var got []uint64
	for e, err := range l.Subscribe(ctx, 0) {
		if err != nil {
			hung(t, ctx, "Subscribe(0) saw %d events (%v), waiting for %d", len(got), got, n)
			select {
			case werr := <-writerDone:
				t.Fatalf("writer: %v (subscriber saw %v)", werr, got)
			default:
			}
			t.Fatalf("Subscribe failed after %v: %v", got, err)
		}
		got = append(got, e.Seq)
		if len(got) == n {
			break
		}
	}
	// Bounded: the writer appends with ctx.
	if err := <-writerDone; err != nil {
		hung(t, ctx, "the writer, after the subscriber saw all %d events", n)
		t.Fatalf("writer: %v", err)
	}
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("Subscribe(0) yielded seqs %v: a gap or duplicate at index %d", got, i)
		}
	}
}

func testSnapshots(t *testing.T, b Backend) {
	l, s := b.Log, b.Snapshots
	if s == nil {
		t.Skip("no snapshot store")
	}
	ctx := t.Context()
	for i := range 4 {
		mustAppend(t, l, "s", event.ExpectAny, ev("e", "", t0.Add(time.Duration(i)*time.Hour)))
	}
	// candidates collects what Candidates visits; none may be unreadable.
	candidates := func(name string, maxSeq uint64) []snapshot.Meta {
		t.Helper()
		var out []snapshot.Meta
		for c, err := range s.Candidates(name, maxSeq) {
			if err != nil {
				t.Fatalf("Candidates(%q, %d): %v", name, maxSeq, err)
			}
			if c.Unreadable != "" {
				t.Fatalf("Candidates(%q, %d): %s is unreadable: %s", name, maxSeq, c.Meta.File, c.Unreadable)
			}
			out = append(out, c.Meta)
		}
		return out
	}
	if c := candidates("subj", math.MaxUint64); len(c) != 0 {
		t.Fatalf("Candidates before any save = %v", c)
	}
	state := func(seq uint64) []byte { return fmt.Appendf(nil, "state at %d", seq) }
	for _, seq := range []uint64{1, 3, 2} {
		m, err := s.Save(ctx, snapshot.Meta{Name: "subj", LogID: l.LogID(), Seq: seq, Time: t0.Add(time.Duration(seq-1) * time.Hour), SchemaVersion: 7}, state(seq))
		if err != nil {
			t.Fatalf("Save at seq %d: %v", seq, err)
		}
		if m.Seq != seq || m.Name != "subj" || m.RawSize != int64(len(state(seq))) || m.File == "" {
			t.Errorf("Save returned %+v", m)
		}
	}
	if _, err := s.Save(ctx, snapshot.Meta{Name: "other", LogID: l.LogID(), Seq: 4, Time: t0.Add(3 * time.Hour)}, []byte("o")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, snapshot.Meta{Name: "subj", LogID: l.LogID(), Seq: 3, Time: t0.Add(2 * time.Hour), SchemaVersion: 7}, []byte("again")); !errors.Is(err, snapshot.ErrExists) {
		t.Errorf("saving a snapshot twice = %v, want snapshot.ErrExists", err)
	}
	cands := func(maxSeq uint64) []uint64 {
		t.Helper()
		var out []uint64
		for _, m := range candidates("subj", maxSeq) {
			if m.Name != "subj" || m.LogID != l.LogID() || m.SchemaVersion != 7 {
				t.Errorf("candidate %+v: wrong name, log or schema version", m)
			}
			out = append(out, m.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		maxSeq uint64
		want   []uint64
	}{
		{math.MaxUint64, []uint64{3, 2, 1}},
		{4, []uint64{3, 2, 1}},
		{2, []uint64{2, 1}},
		{1, []uint64{1}},
		{0, nil},
	} {
		if got := cands(tc.maxSeq); !slices.Equal(got, tc.want) {
			t.Errorf("Candidates(%d) = %v, want %v", tc.maxSeq, got, tc.want)
		}
	}
	c := candidates("subj", math.MaxUint64)
	if len(c) == 0 {
		t.Fatal("no candidates")
	}
	got, err := s.Load(ctx, c[0])
	if err != nil || string(got) != string(state(3)) {
		t.Errorf("Load(%v) = %q, %v; want %q", c[0], got, err, state(3))
	}
	if !c[0].Time.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("candidate time %v, saved %v", c[0].Time, t0.Add(2*time.Hour))
	}
	removed, err := s.Prune(ctx, "subj", snapshot.PrunePolicy{KeepLast: 1})
	if err != nil {
		t.Fatal(err)
	}
	var removedSeqs []uint64
	for _, m := range removed {
		removedSeqs = append(removedSeqs, m.Seq)
	}
	slices.Sort(removedSeqs)
	if !slices.Equal(removedSeqs, []uint64{1, 2}) {
		t.Errorf("Prune(KeepLast 1) removed %v, want [1 2]", removedSeqs)
	}
	if got := cands(math.MaxUint64); !slices.Equal(got, []uint64{3}) {
		t.Errorf("after Prune: candidates %v, want [3]", got)
	}
	if c := candidates("other", math.MaxUint64); len(c) != 1 {
		t.Errorf("Prune of subj touched other: %v", c)
	}
	if _, err := s.Load(ctx, snapshot.Meta{Name: "subj", Seq: 1, File: removed[0].File}); err == nil {
		t.Error("Load of a pruned snapshot succeeded")
	}
}

// testFallbacks saves snapshots that replay must not use (another log,
// another schema version, a wrong anchor time, beyond the end of the log)
// and checks that replay over the backend folds the same state from the
// events, reporting every fallback, and uses a good one when there is.
func testFallbacks(t *testing.T, b Backend) {
	l, s := b.Log, b.Snapshots
	if s == nil {
		t.Skip("no snapshot store")
	}
	ctx := t.Context()
	for i := range 6 {
		mustAppend(t, l, fmt.Sprint("s", i%2), event.ExpectAny, ev("e", fmt.Sprint(i), t0.Add(time.Duration(i)*time.Minute)))
	}
	spec := replay.Spec[[]string, event.Envelope]{
		Decode: replay.Raw,
		Fold:   func(s []string, e event.Envelope) []string { return append(slices.Clone(s), string(e.Data)) },
	}
	subj := replay.Subject{Name: "fold", SchemaVersion: 1}
	full, err := replay.State(ctx, l, nil, subj, replay.Latest(), spec, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"0", "1", "2", "3", "4", "5"}, full.State); d != "" {
		t.Fatalf("full replay (-want +got):\n%s", d)
	}
	save := func(m snapshot.Meta, st []string) {
		t.Helper()
		b, err := replay.EncodeState(spec, st)
		if err != nil {
			t.Fatal(err)
		}
		m.Name = "fold"
		if _, err := s.Save(ctx, m, b); err != nil {
			t.Fatalf("Save(%+v): %v", m, err)
		}
	}
	at := func(seq uint64) time.Time { return t0.Add(time.Duration(seq-1) * time.Minute) }
	var otherLog [16]byte
	otherLog[0] = 0xee
	save(snapshot.Meta{LogID: l.LogID(), Seq: 2, Time: at(2), SchemaVersion: 1}, []string{"0", "1"}) // good
	save(snapshot.Meta{LogID: otherLog, Seq: 3, Time: at(3), SchemaVersion: 1}, []string{"x"})       // another log
	save(snapshot.Meta{LogID: l.LogID(), Seq: 4, Time: at(4), SchemaVersion: 2}, []string{"x"})      // another schema
	save(snapshot.Meta{LogID: l.LogID(), Seq: 5, Time: at(4), SchemaVersion: 1}, []string{"x"})      // wrong anchor time
	wantFell := []uint64{5, 4, 3}
	// A store may refuse a snapshot beyond the end of the log (the file
	// log's does); one that keeps it must be skipped by replay.
	beyond, _ := replay.EncodeState(spec, []string{"x", "y", "z"})
	if _, err := s.Save(ctx, snapshot.Meta{Name: "fold", LogID: l.LogID(), Seq: 99, Time: at(99), SchemaVersion: 1}, beyond); err == nil {
		wantFell = append([]uint64{99}, wantFell...)
	}
	res, err := replay.State(ctx, l, s, subj, replay.Latest(), spec, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(full.State, res.State); d != "" {
		t.Errorf("replay with snapshots differs from the full replay (-want +got):\n%s", d)
	}
	if res.Plan.Snapshot == nil || res.Plan.Snapshot.Seq != 2 {
		t.Errorf("replay used snapshot %v, want the one at seq 2", res.Plan.Snapshot)
	}
	var fell []uint64
	for _, f := range res.Plan.Fallbacks {
		fell = append(fell, f.Seq)
	}
	if d := cmp.Diff(wantFell, fell); d != "" {
		t.Errorf("fallbacks (-want +got):\n%s", d)
	}
	// A stream-scoped state at a time between snapshots.
	subj = replay.Subject{Name: "fold-s1", SchemaVersion: 1, Scope: replay.Scope{Stream: "s1"}}
	save2 := func(seq uint64, st []string) {
		b, _ := replay.EncodeState(spec, st)
		if _, err := s.Save(ctx, snapshot.Meta{Name: "fold-s1", LogID: l.LogID(), Seq: seq, Time: at(seq), SchemaVersion: 1}, b); err != nil {
			t.Fatal(err)
		}
	}
	save2(4, []string{"1", "3"})
	res, err = replay.State(ctx, l, s, subj, replay.AtTime(at(5)), spec, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"1", "3"}, res.State); d != "" || res.Plan.Snapshot == nil {
		t.Errorf("s1 at seq 5's time from the snapshot at 4 (snapshot %v) (-want +got):\n%s", res.Plan.Snapshot, d)
	}
	res, err = replay.State(ctx, l, s, subj, replay.Latest(), spec, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"1", "3", "5"}, res.State); d != "" || res.Version != 3 {
		t.Errorf("s1 latest (version %d) (-want +got):\n%s", res.Version, d)
	}
}
