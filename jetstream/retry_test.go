package jetstream_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
)

// idEv returns an event of type typ with ID id and data typ.
func idEv(typ, id string) event.Envelope {
	return event.Envelope{Type: typ, ID: id, Data: []byte(typ)}
}

// TestCallerRetryOfBatchAfterAnotherWriter: a caller re-sending a
// multi-event append (same IDs, same events) after other writers appended
// to its streams gets the original positions and writes nothing, as on the
// file log, whatever its expectation: the server names no seq for a
// duplicate inside a batch, so the log finds the batch by its IDs.
func TestCallerRetryOfBatchAfterAnotherWriter(t *testing.T) {
	s := startServer(t)
	for _, expect := range []event.Expectation{evlog.ExpectNoStream, evlog.ExpectAny} {
		t.Run(fmt.Sprint(int64(expect)), func(t *testing.T) {
			l := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1})
			other := openLog(t, connect(t, s.ClientURL()), evjs.Config{Name: l.Name(), Replicas: 1})
			ctx := t.Context()
			if _, err := other.Append(ctx, "x", evlog.ExpectAny, ev("before")); err != nil {
				t.Fatal(err)
			}
			batch := []evlog.AppendRequest{
				{Stream: "a", Expect: expect, Events: []event.Envelope{idEv("a1", "r/a1"), idEv("a2", "r/a2")}},
				{Stream: "b", Expect: expect, Events: []event.Envelope{idEv("b1", "r/b1")}},
			}
			first, err := l.AppendBatch(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range []string{"a", "b", "x"} {
				if _, err := other.Append(ctx, st, evlog.ExpectAny, ev("later")); err != nil {
					t.Fatal(err)
				}
			}
			again, err := l.AppendBatch(ctx, batch)
			if err != nil {
				t.Fatalf("caller's retry of a committed batch after other appends to its streams: %v", err)
			}
			if diff := cmp.Diff(first, again); diff != "" {
				t.Errorf("retry positions differ from the original's (-first +retry):\n%s", diff)
			}
			// A one-stream multi-event retry, through Append.
			one := []event.Envelope{idEv("c1", "r/c1"), idEv("c2", "r/c2")}
			p1, err := l.Append(ctx, "c", expect, one...)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := other.Append(ctx, "c", evlog.ExpectAny, ev("later")); err != nil {
				t.Fatal(err)
			}
			p2, err := l.Append(ctx, "c", expect, one...)
			if err != nil {
				t.Fatalf("caller's retry of a two-event append after another append to its stream: %v", err)
			}
			if p1 != p2 {
				t.Errorf("retry position %+v, want the original %+v", p2, p1)
			}
			if n := len(allEvents(t, l)); n != 1+3+3+2+1 {
				t.Errorf("log holds %d events, want %d (each append once)", n, 1+3+3+2+1)
			}
		})
	}
}

// TestRetryRecognitionChecksEveryEvent: an append is a retry only if every
// one of its events is in the log, consecutive, in its streams and order,
// with the same content; an append sharing only its last event (or only
// its first part) with the log is not a retry: it fails with
// ErrDuplicateID (and ErrInvalid) and writes nothing, as on the file log.
// Before, a match of each part's last event passed for the whole append,
// so the other events were silently never written.
func TestRetryRecognitionChecksEveryEvent(t *testing.T) {
	s := startServer(t)
	for _, tc := range []struct {
		name   string
		expect event.Expectation
		first  []evlog.AppendRequest
		second []evlog.AppendRequest
	}{
		{
			name:   "earlier event changed",
			expect: evlog.ExpectAny,
			first:  []evlog.AppendRequest{{Stream: "s", Events: []event.Envelope{idEv("e1", "x1"), idEv("e2", "x2")}}},
			second: []evlog.AppendRequest{{Stream: "s", Events: []event.Envelope{idEv("e1-changed", "x1"), idEv("e2", "x2")}}},
		},
		{
			name:   "new event before a known one",
			expect: evlog.ExpectAny,
			first:  []evlog.AppendRequest{{Stream: "s", Events: []event.Envelope{idEv("e2", "x2")}}},
			second: []evlog.AppendRequest{{Stream: "s", Events: []event.Envelope{ev("new"), idEv("e2", "x2")}}},
		},
		{
			name:   "new event with an ID before a known one, stale expectation",
			expect: evlog.ExpectNoStream,
			first:  []evlog.AppendRequest{{Stream: "s", Events: []event.Envelope{idEv("e2", "x2")}}},
			second: []evlog.AppendRequest{{Stream: "s", Events: []event.Envelope{idEv("new", "x0"), idEv("e2", "x2")}}},
		},
		{
			name:   "two events of the append share an ID",
			expect: evlog.ExpectNoStream,
			first:  []evlog.AppendRequest{{Stream: "s", Events: []event.Envelope{ev("e0")}}},
			second: []evlog.AppendRequest{
				{Stream: "s", Events: []event.Envelope{idEv("a1", "x1")}},
				{Stream: "t", Events: []event.Envelope{idEv("b1", "x1")}},
			},
		},
		{
			name:   "re-sent with an event without an ID, stale expectation",
			expect: evlog.ExpectNoStream,
			first: []evlog.AppendRequest{
				{Stream: "s", Events: []event.Envelope{idEv("a1", "x1")}},
				{Stream: "t", Events: []event.Envelope{ev("no-id")}},
			},
			second: []evlog.AppendRequest{
				{Stream: "s", Events: []event.Envelope{idEv("a1", "x1")}},
				{Stream: "t", Events: []event.Envelope{ev("no-id")}},
			},
		},
		{
			name:   "first part committed, second not",
			expect: evlog.ExpectAny,
			first:  []evlog.AppendRequest{{Stream: "s", Events: []event.Envelope{idEv("a1", "x1")}}},
			second: []evlog.AppendRequest{
				{Stream: "s", Events: []event.Envelope{idEv("a1", "x1")}},
				{Stream: "t", Events: []event.Envelope{idEv("b1", "x2")}},
			},
		},
		{
			name:   "second part committed, first not",
			expect: evlog.ExpectAny,
			first:  []evlog.AppendRequest{{Stream: "t", Events: []event.Envelope{idEv("b1", "x2")}}},
			second: []evlog.AppendRequest{
				{Stream: "s", Events: []event.Envelope{idEv("a1", "x1")}},
				{Stream: "t", Events: []event.Envelope{idEv("b1", "x2")}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1})
			ctx := t.Context()
			for i := range tc.first {
				tc.first[i].Expect = evlog.ExpectAny
			}
			if _, err := l.AppendBatch(ctx, tc.first); err != nil {
				t.Fatal(err)
			}
			before := allEvents(t, l)
			for i := range tc.second {
				tc.second[i].Expect = tc.expect
			}
			pos, err := l.AppendBatch(ctx, tc.second)
			if !errors.Is(err, evlog.ErrDuplicateID) || !errors.Is(err, evlog.ErrInvalid) {
				t.Errorf("append sharing only some events with the log = %+v, %v; want ErrDuplicateID and ErrInvalid", pos, err)
			}
			if diff := cmp.Diff(before, allEvents(t, l)); diff != "" {
				t.Errorf("the refused append changed the log (-before +after):\n%s", diff)
			}
		})
	}
}

// TestCallerRetryWithExplicitTimeAfterLaterAppend: a caller's retry of an
// append with explicit times, after another writer appended later in time,
// is recognised before its times are checked, as on the file log: it
// returns the original positions, not ErrTimeBackwards.
func TestCallerRetryWithExplicitTimeAfterLaterAppend(t *testing.T) {
	s := startServer(t)
	l := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1})
	other := openLog(t, connect(t, s.ClientURL()), evjs.Config{Name: l.Name(), Replicas: 1})
	ctx := t.Context()
	for _, events := range [][]event.Envelope{
		{{Type: "one", ID: "t/one"}},
		{{Type: "two-a", ID: "t/two-a"}, {Type: "two-b", ID: "t/two-b"}},
	} {
		stream := events[0].Type
		at := allEvents(t, l)
		t0 := time.Unix(0, 1).UTC() // explicit, and no earlier than the log's last time
		if len(at) > 0 {
			t0 = at[len(at)-1].Time
		}
		for i := range events {
			events[i].Time = t0
		}
		first, err := l.Append(ctx, stream, evlog.ExpectAny, events...)
		if err != nil {
			t.Fatal(err)
		}
		later := ev("later")
		later.Time = t0.Add(time.Second)
		if _, err := other.Append(ctx, "elsewhere", evlog.ExpectAny, later); err != nil {
			t.Fatal(err)
		}
		again, err := l.Append(ctx, stream, evlog.ExpectAny, events...)
		if err != nil {
			t.Fatalf("%s: caller's retry with the original explicit time after a later append: %v", stream, err)
		}
		if again != first {
			t.Errorf("%s: retry position %+v, want the original %+v", stream, again, first)
		}
	}
	if n := len(allEvents(t, l)); n != 5 {
		t.Errorf("log holds %d events, want 5", n)
	}
}

// TestFutureTimeRefused: an explicit Time more than Config.MaxClockSkew
// ahead of Config.Clock fails with ErrFutureTime and writes nothing, as on
// the file log: stored, it would pin the recorded time of every later
// append to it. NoClockSkewLimit turns the check off.
func TestFutureTimeRefused(t *testing.T) {
	s := startServer(t)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	l := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1, Clock: clock})
	ctx := t.Context()
	e := event.Envelope{Type: "e", Time: now.Add(evlog.DefaultMaxClockSkew + time.Nanosecond)}
	_, err := l.Append(ctx, "s", evlog.ExpectAny, ev("first"), e)
	fe, ok := errors.AsType[*evlog.FutureTimeError](err)
	if !ok || !errors.Is(err, evlog.ErrFutureTime) || fe.Index != 1 || fe.Stream != "s" {
		t.Fatalf("append of an event %v ahead of the clock = %v, want a *FutureTimeError for event 1 of s", evlog.DefaultMaxClockSkew+time.Nanosecond, err)
	}
	if n := len(allEvents(t, l)); n != 0 {
		t.Fatalf("the refused append wrote %d events", n)
	}
	e.Time = now.Add(evlog.DefaultMaxClockSkew)
	if _, err := l.Append(ctx, "s", evlog.ExpectAny, e); err != nil {
		t.Fatalf("an event exactly MaxClockSkew ahead: %v", err)
	}
	off := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1, Clock: clock, MaxClockSkew: evlog.NoClockSkewLimit})
	e.Time = now.Add(24 * time.Hour)
	if _, err := off.Append(ctx, "s", evlog.ExpectAny, e); err != nil {
		t.Fatalf("with NoClockSkewLimit: %v", err)
	}
}

// TestConcurrentSameIDAppends: several goroutines append the same batch
// (same IDs) at once, as a caller retrying while its first call is still
// on its way: it is stored once, and every call succeeds with the same
// positions (a duplicate still being stored is looked for again, not an
// error).
func TestConcurrentSameIDAppends(t *testing.T) {
	s := startServer(t)
	l := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1})
	ctx := t.Context()
	batch := []evlog.AppendRequest{
		{Stream: "a", Expect: evlog.ExpectAny, Events: []event.Envelope{idEv("a1", "c/a1"), idEv("a2", "c/a2")}},
		{Stream: "b", Expect: evlog.ExpectAny, Events: []event.Envelope{idEv("b1", "c/b1")}},
	}
	const n = 8
	type result struct {
		pos []event.Position
		err error
	}
	results := make(chan result, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			pos, err := l.AppendBatch(ctx, batch)
			results <- result{pos, err}
		}()
	}
	close(start)
	var first []event.Position
	for range n {
		r := <-results
		if r.err != nil {
			t.Errorf("concurrent append of the same batch: %v", r.err)
			continue
		}
		if first == nil {
			first = r.pos
		} else if diff := cmp.Diff(first, r.pos); diff != "" {
			t.Errorf("positions differ between calls (-one +another):\n%s", diff)
		}
	}
	if got := len(allEvents(t, l)); got != 3 {
		t.Errorf("log holds %d events, want the batch once (3)", got)
	}
}

// TestEventOverMaxPayloadIsInvalid: an event too large for one message
// (the servers' max_payload) is refused with ErrInvalid before anything is
// sent, as the file log refuses one over MaxEventSize, not with the
// client's bare "maximum payload exceeded".
func TestEventOverMaxPayloadIsInvalid(t *testing.T) {
	s := startServer(t)
	js := connect(t, s.ClientURL())
	l := openLog(t, js, evjs.Config{Replicas: 1})
	big := event.Envelope{Type: "big", Data: make([]byte, js.Conn().MaxPayload())}
	for _, events := range [][]event.Envelope{{big}, {ev("small"), big}} {
		_, err := l.Append(t.Context(), "s", evlog.ExpectAny, events...)
		if !errors.Is(err, evlog.ErrInvalid) {
			t.Errorf("append of %d events, one of %d bytes = %v, want ErrInvalid", len(events), len(big.Data), err)
		}
	}
	if n := len(allEvents(t, l)); n != 0 {
		t.Errorf("the refused appends wrote %d events", n)
	}
}

// TestEventHeadersOverLimitIsInvalid: an event whose headers (type, ID and
// meta, escaped) exceed what a JetStream message carries (64 KiB) is
// refused with ErrInvalid before anything is sent, not with the server's
// bare API error.
func TestEventHeadersOverLimitIsInvalid(t *testing.T) {
	s := startServer(t)
	l := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1})
	meta := map[string]string{}
	for i := range event.MaxMetaEntries {
		meta[fmt.Sprint("k", i)] = strings.Repeat(".", event.MaxMetaValueLen) // escaped to three bytes each
	}
	_, err := l.Append(t.Context(), "s", evlog.ExpectAny, event.Envelope{Type: "e", Meta: meta})
	if !errors.Is(err, evlog.ErrInvalid) {
		t.Errorf("append of an event with %d meta entries of %d bytes = %v, want ErrInvalid", len(meta), event.MaxMetaValueLen, err)
	}
	if n := len(allEvents(t, l)); n != 0 {
		t.Errorf("the refused append wrote %d events", n)
	}
}
