package evlog

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
)

// sameBatch returns a typed batch of n events of type "t": one part of
// stream "s" (parts false) or n parts of one event each, streams p-0,
// p-1, … Every event has the fields of the one before it, as the
// benchmarks' batches do (batchSource.same).
func sameBatch(n int, parts bool) []Batch[string] {
	evs := make([]Event[string], n)
	for i := range evs {
		evs[i] = Event[string]{Type: "t", Data: fmt.Sprint("payload-", i)}
	}
	if !parts {
		return []Batch[string]{{Stream: "s", Expect: ExpectAny, Events: evs}}
	}
	out := make([]Batch[string], n)
	for i := range out {
		out[i] = Batch[string]{Stream: fmt.Sprint("p-", i), Expect: ExpectAny, Events: evs[i : i+1]}
	}
	return out
}

// TestTypedBatchRefusesBadEventMidBatch: the typed path checks an event
// whose fields repeat the previous event's only once (checkTyped and
// stage skip the repeats). An event in the middle of a batch that differs
// from the ones before it in one field — a bad or reserved type, Seq or
// Version set, another stream named, an over-long meta entry, a time out
// of range, in the future or going backwards, a stale schema version, an
// ID of the event before it, too big an event — is still refused with the
// error of the unbatched append, in one part and as one part of a
// 1,000-part batch, and nothing of the batch is written; the log then
// takes the same batch without the bad event.
func TestTypedBatchRefusesBadEventMidBatch(t *testing.T) {
	const n, k = 1000, 500 // k: the bad event (or part)
	clock := t0.Add(time.Hour)
	for _, tc := range []struct {
		name string
		bad  func(b []Batch[string], ev *Event[string])
		want error
	}{
		{"bad type", func(_ []Batch[string], ev *Event[string]) { ev.Type = "a\nb" }, ErrInvalid},
		{"reserved type", func(_ []Batch[string], ev *Event[string]) { ev.Type = SystemTypePrefix + "x" }, ErrInvalid},
		{"Seq set", func(_ []Batch[string], ev *Event[string]) { ev.Seq = 7 }, ErrInvalid},
		{"Version set", func(_ []Batch[string], ev *Event[string]) { ev.Version = 7 }, ErrInvalid},
		{"another stream named", func(_ []Batch[string], ev *Event[string]) { ev.Stream = "other" }, ErrInvalid},
		{"previous part's stream named", func(b []Batch[string], ev *Event[string]) {
			// Every event names its part's stream, the bad one the
			// previous part's: its fields repeat the event before it.
			for i := range b {
				for j := range b[i].Events {
					b[i].Events[j].Stream = b[i].Stream
				}
			}
			if len(b) > 1 {
				ev.Stream = b[k-1].Stream
			} else {
				ev.Stream = "other"
			}
		}, ErrInvalid},
		{"bad stream of the part", func(b []Batch[string], _ *Event[string]) {
			if len(b) > 1 {
				b[k].Stream = "a\x00b"
			} else {
				b[0].Stream = "a\x00b"
			}
		}, ErrInvalid},
		{"long meta entry", func(_ []Batch[string], ev *Event[string]) {
			ev.Meta = map[string]string{"k": strings.Repeat("v", 4097)}
		}, ErrInvalid},
		{"time before 1678", func(_ []Batch[string], ev *Event[string]) { ev.Time = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) }, ErrInvalid},
		{"future time", func(_ []Batch[string], ev *Event[string]) { ev.Time = clock.Add(time.Hour) }, ErrFutureTime},
		{"future time among advancing times", func(b []Batch[string], ev *Event[string]) {
			advancing(b)
			ev.Time = clock.Add(time.Hour)
		}, ErrFutureTime},
		{"time before 1678 among advancing times", func(b []Batch[string], ev *Event[string]) {
			advancing(b)
			ev.Time = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)
		}, ErrInvalid},
		{"time backwards among advancing times", func(b []Batch[string], ev *Event[string]) {
			advancing(b)
			ev.Time = ev.Time.Add(-2 * time.Millisecond)
		}, ErrTimeBackwards},
		{"time backwards", func(b []Batch[string], ev *Event[string]) {
			for i := range b {
				for j := range b[i].Events {
					b[i].Events[j].Time = t0.Add(time.Second)
				}
			}
			ev.Time = t0
		}, ErrTimeBackwards},
		{"stale schema version", func(_ []Batch[string], ev *Event[string]) { ev.SchemaVersion = 1 }, ErrSchemaVersion},
		{"ID of the event before", func(b []Batch[string], ev *Event[string]) {
			var prev *Event[string]
			if len(b) > 1 {
				prev = &b[k-1].Events[0]
			} else {
				prev = &b[0].Events[k-1]
			}
			prev.ID, ev.ID = "dup", "dup"
		}, ErrDuplicateID},
		{"over MaxEventSize", func(_ []Batch[string], ev *Event[string]) { ev.Data = strings.Repeat("x", 2000) }, ErrInvalid},
		{"long stream over MaxEventSize", func(b []Batch[string], _ *Event[string]) {
			if len(b) > 1 {
				b[k].Stream = strings.Repeat("s", 1000)
			} else {
				b[0].Stream = strings.Repeat("s", 1000)
			}
		}, ErrInvalid},
	} {
		for _, parts := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/parts=%v", tc.name, parts), func(t *testing.T) {
				ctx := t.Context()
				up := NewUpcasters().MustRegister(Upcast{Type: "t", From: 1, Fn: func(old any) (any, error) { return old, nil }})
				l := openMem(t, vfs.NewMem(), Options{MaxEventSize: 1024, Clock: func() time.Time { return clock }})
				defer l.Close()
				tl := Typed[string](l, WithUpcasters(up))
				// A first event, so that the batch's time can go backwards.
				if _, err := tl.Append(ctx, "first", ExpectAny, Event[string]{Type: "t", Time: t0.Add(time.Second), Data: "x"}); err != nil {
					t.Fatal(err)
				}
				before := readAll(t, l)
				b := sameBatch(n, parts)
				var ev *Event[string]
				if parts {
					ev = &b[k].Events[0]
				} else {
					ev = &b[0].Events[k]
				}
				tc.bad(b, ev)
				if _, err := tl.AppendBatch(ctx, b); !errors.Is(err, tc.want) {
					t.Fatalf("AppendBatch: %v, want %v", err, tc.want)
				}
				if d := envsDiff(before, readAll(t, l)); d != "" {
					t.Fatalf("the refused batch changed the log:\n%s", d)
				}
				if _, err := tl.AppendBatch(ctx, sameBatch(n, parts)); err != nil {
					t.Fatalf("appending the batch without the bad event: %v", err)
				}
				if got := len(readAll(t, l)); got != len(before)+n {
					t.Fatalf("%d events in the log, want %d", got, len(before)+n)
				}
			})
		}
	}
}

// advancing gives the events of b their own times, a millisecond apart,
// after the first event TestTypedBatchRefusesBadEventMidBatch appends.
func advancing(b []Batch[string]) {
	at := t0.Add(2 * time.Second)
	for i := range b {
		for j := range b[i].Events {
			at = at.Add(time.Millisecond)
			b[i].Events[j].Time = at
		}
	}
}

// TestTypedRepeatedEventsSameAsRaw: typed batches whose events repeat the
// one before them (written with the previous event's envelope, not a new
// one) write the very event frames appending their Encode-d envelopes
// writes: stamped or explicit times, in one part or many, events naming
// their part's stream or not, through a view and through a registry.
func TestTypedRepeatedEventsSameAsRaw(t *testing.T) {
	explicit := t0.Add(time.Minute)
	// MaxClockSkew: the advancing explicit times run ahead of the fake
	// clock.
	opts := Options{SegmentSize: MinSegmentSize * 32, Clock: fakeClock(t0, time.Millisecond), MaxClockSkew: time.Hour}
	typedFS, rawFS, regFS := vfs.NewMem(), vfs.NewMem(), vfs.NewMem()
	tl := Typed[string](openMem(t, typedFS, opts))
	opts.Clock = fakeClock(t0, time.Millisecond)
	rl := openMem(t, rawFS, opts)
	reg := NewRegistry()
	if err := Register[string](reg, "t", 0); err != nil {
		t.Fatal(err)
	}
	opts.Clock = fakeClock(t0, time.Millisecond)
	gl := Typed[any](openMem(t, regFS, opts), WithRegistry(reg))
	ctx := t.Context()
	// Rounds: one part or many (round%2); times stamped, one explicit
	// time for all, each event its own (the envelope head is copied and
	// its time rewritten), or runs of 1 to 7 events with one time, each
	// run's instant given first in another Location (batchSource.sameRun:
	// an equal instant is no run) (round/2%4); events naming their
	// stream or not (round/8).
	at := explicit // advancing explicit times
	east := time.FixedZone("east", 3600)
	for round := range 16 {
		b := sameBatch(300, round%2 == 1)
		for i := range b {
			for j := range b[i].Events {
				ev := &b[i].Events[j]
				switch round / 2 % 4 {
				case 1:
					ev.Time = at // one explicit time, not before the rounds' before
				case 2:
					at = at.Add(time.Millisecond + time.Duration(j%3)*time.Nanosecond)
					ev.Time = at
				case 3:
					ev.Time = at
					if k := i + j; k%7 == k/7%7 {
						at = at.Add(time.Microsecond)
						ev.Time = at.In(east)
					}
				}
				if round/8 == 1 {
					ev.Stream = b[i].Stream
				}
			}
		}
		var reqs []AppendRequest
		var parts []Batch[any]
		for _, p := range b {
			req := AppendRequest{Stream: p.Stream, Expect: p.Expect}
			part := Batch[any]{Stream: p.Stream, Expect: p.Expect}
			for _, ev := range p.Events {
				env, err := Encode(ev)
				if err != nil {
					t.Fatal(err)
				}
				req.Events = append(req.Events, env)
				part.Events = append(part.Events, Event[any]{Stream: ev.Stream, Time: ev.Time, Data: ev.Data})
			}
			reqs = append(reqs, req)
			parts = append(parts, part)
		}
		if _, err := tl.AppendBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		if _, err := rl.AppendBatch(ctx, reqs); err != nil {
			t.Fatal(err)
		}
		if _, err := gl.AppendBatch(ctx, parts); err != nil {
			t.Fatal(err)
		}
	}
	want := readAll(t, rl)
	if diff := envsDiff(want, readAll(t, tl.Log())); diff != "" {
		t.Fatalf("typed log differs from raw log (-raw +typed):\n%s", diff)
	}
	if diff := envsDiff(want, readAll(t, gl.Log())); diff != "" {
		t.Fatalf("registry log differs from raw log (-raw +registry):\n%s", diff)
	}
	for _, l := range []*Log{tl.Log(), rl, gl.Log()} {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	names, _ := rawFS.List()
	for _, name := range names {
		if !strings.HasSuffix(name, ".seg") {
			continue
		}
		raw := eventFrames(t, readMemFile(t, rawFS, name))
		if len(raw) == 0 {
			t.Fatalf("%s: no event frames", name)
		}
		for fs, what := range map[vfs.FS]string{typedFS: "typed", regFS: "registry"} {
			if got := eventFrames(t, readMemFile(t, fs, name)); string(got) != string(raw) {
				t.Errorf("%s: %s event frames differ from raw ones", name, what)
			}
		}
	}
}

// TestTypedSizeBoundAsRaw: the typed path bounds each event's size as
// checkBatch bounds a raw envelope's (its assigned fields at their
// widest), also for an event repeating the one before it in a new part
// of a longer stream name: for every stream length around the limit, a
// typed batch is refused exactly when the raw batch of its Encode-d
// envelopes is.
func TestTypedSizeBoundAsRaw(t *testing.T) {
	ctx := t.Context()
	opts := Options{MaxEventSize: 1024}
	tl := Typed[string](openMem(t, vfs.NewMem(), opts))
	defer tl.Log().Close()
	rl := openMem(t, vfs.NewMem(), opts)
	defer rl.Close()
	refused := 0
	for n := 900; n <= 1024; n++ {
		b := sameBatch(3, true)
		b[1].Stream = strings.Repeat("s", n)
		var reqs []AppendRequest
		for _, p := range b {
			env, err := Encode(p.Events[0])
			if err != nil {
				t.Fatal(err)
			}
			reqs = append(reqs, AppendRequest{Stream: p.Stream, Expect: p.Expect, Events: []Envelope{env}})
		}
		_, rerr := rl.AppendBatch(ctx, reqs)
		_, terr := tl.AppendBatch(ctx, b)
		if (rerr == nil) != (terr == nil) || (rerr != nil && !errors.Is(terr, ErrInvalid)) {
			t.Fatalf("stream of %d bytes: typed append %v, raw append %v", n, terr, rerr)
		}
		if rerr != nil {
			refused++
		}
	}
	if refused == 0 || refused == 125 {
		t.Fatalf("%d of 125 batches refused: the lengths should straddle the limit", refused)
	}
}
