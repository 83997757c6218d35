package evlog

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// mixedBatch returns a typed batch of n events over parts of 1 to 7
// events (streams q-0, q-1, …, a stream again every 5th part): runs of
// events repeating the one before them (batchSource.same) broken by
// another type, an ID, Meta, an event naming its stream, explicit times
// (advancing from at) or stamped ones, and payloads of varying length.
func mixedBatch(n int, at time.Time) []Batch[string] {
	var out []Batch[string]
	k := 0
	for p := 0; k < n; p++ {
		stream := fmt.Sprint("q-", p)
		if p%5 == 4 {
			stream = "q-0"
		}
		evs := make([]Event[string], 0, 7)
		for j := 0; j < 1+p%7 && k < n; j, k = j+1, k+1 {
			ev := Event[string]{Type: "t", Data: strings.Repeat("x", k%37)}
			switch {
			case k%11 == 3:
				ev.Type = "u"
			case k%13 == 5:
				ev.ID = fmt.Sprint("id-", k)
			case k%17 == 7:
				ev.Meta = map[string]string{"k": fmt.Sprint(k)}
			case k%19 == 9:
				ev.Stream = stream
			}
			if k/50%2 == 1 {
				at = at.Add(time.Millisecond)
				ev.Time = at
			}
			evs = append(evs, ev)
		}
		out = append(out, Batch[string]{Stream: stream, Expect: ExpectAny, Events: evs})
	}
	return out
}

// TestParallelEncodeSameBytes: a typed request whose frames are encoded on
// two goroutines (encodeTyped) writes the bytes, returns the positions and
// reads back the events of the same request encoded on one, wherever the
// cut falls: after the first event, at a part's first event, inside a run
// of repeated events, before the last event; one stream or many; through
// a view and through a registry.
func TestParallelEncodeSameBytes(t *testing.T) {
	const n = 600
	type shape struct {
		name  string
		batch func(round int) []Batch[string]
	}
	shapes := []shape{
		{"one stream", func(int) []Batch[string] { return sameBatch(n, false) }},
		{"a stream per event", func(int) []Batch[string] { return sameBatch(n, true) }},
		{"mixed", func(round int) []Batch[string] { return mixedBatch(n, t0.Add(time.Duration(round+1)*time.Hour)) }},
	}
	reg := NewRegistry()
	if err := Register[string](reg, "t", 0); err != nil {
		t.Fatal(err)
	}
	if err := Register[string](reg, "u", 0); err != nil {
		t.Fatal(err)
	}
	// The cuts (events the writer encodes): 0 is the one-goroutine
	// baseline. 4 is the second part's first event of "mixed" and
	// inside the one stream's run; 300 a part's first event of "a stream
	// per event".
	cuts := []int{0, 1, 4, 300, 301, n - 1, -1}
	ctx := t.Context()
	for _, sh := range shapes {
		for _, viaReg := range []bool{false, true} {
			type result struct {
				frames  []byte
				pos     []Position
				evs     []Envelope
				streams map[string][]uint64
			}
			var base result
			for _, cut := range cuts {
				fs := vfs.NewMem()
				l := openMem(t, fs, Options{Clock: fakeClock(t0, time.Millisecond), MaxClockSkew: 3 * time.Hour})
				split := 0
				l.w.encodeCut = func(events int) int {
					switch {
					case cut == 0:
						return events
					case cut == -1: // the default's cut
						split++
						return events * parallelEncodeShare / 256
					}
					split++
					return cut
				}
				var pos []Position
				var err error
				// Two requests: the second's offsets follow the first's.
				for round := range 2 {
					batch := sh.batch(round)
					for _, b := range batch {
						for j := range b.Events {
							if round == 1 && b.Events[j].ID != "" {
								b.Events[j].ID += "-again"
							}
						}
					}
					var p []Position
					if viaReg {
						var parts []Batch[any]
						for _, b := range batch {
							part := Batch[any]{Stream: b.Stream, Expect: b.Expect}
							for _, ev := range b.Events {
								part.Events = append(part.Events, Event[any]{Stream: ev.Stream, Type: ev.Type, ID: ev.ID, Meta: ev.Meta, Time: ev.Time, Data: ev.Data})
							}
							parts = append(parts, part)
						}
						p, err = Typed[any](l, WithRegistry(reg)).AppendBatch(ctx, parts)
					} else {
						p, err = Typed[string](l).AppendBatch(ctx, batch)
					}
					if err != nil {
						t.Fatalf("%s, registry %v, cut %d: %v", sh.name, viaReg, cut, err)
					}
					pos = append(pos, p...)
				}
				if cut != 0 && split != 2 {
					t.Fatalf("%s, cut %d: the cut was asked for %d times, want 2", sh.name, cut, split)
				}
				got := result{pos: pos, evs: readAll(t, l)}
				got.streams = streamSeqs(t, l)
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				// Reopened: the index Close wrote (each event's offset).
				l = openMem(t, fs, Options{})
				if diff := cmp.Diff(got.streams, streamSeqs(t, l)); diff != "" {
					t.Errorf("%s, registry %v, cut %d: streams read after a reopen differ (-before +after):\n%s", sh.name, viaReg, cut, diff)
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				names, _ := fs.List()
				for _, name := range names {
					if strings.HasSuffix(name, ".seg") {
						got.frames = append(got.frames, eventFrames(t, readMemFile(t, fs, name))...)
					}
				}
				if len(got.evs) != 2*n {
					t.Fatalf("%s, cut %d: %d events read back, want %d", sh.name, cut, len(got.evs), 2*n)
				}
				if cut == 0 {
					base = got
					continue
				}
				// (The frames being the same bytes, so are the events
				// read back.)
				if diff := cmp.Diff(base.pos, got.pos); diff != "" {
					t.Errorf("%s, registry %v, cut %d: positions differ from one goroutine's (-one +two):\n%s", sh.name, viaReg, cut, diff)
				}
				if diff := cmp.Diff(base.streams, got.streams); diff != "" {
					t.Errorf("%s, registry %v, cut %d: streams read differ from one goroutine's (-one +two):\n%s", sh.name, viaReg, cut, diff)
				}
				if string(got.frames) != string(base.frames) {
					t.Errorf("%s, registry %v, cut %d: frames differ from one goroutine's", sh.name, viaReg, cut)
				}
			}
		}
	}
}

// TestParallelEncodeFailures: an event of the second goroutine's part of a
// request that fails to encode, panics or passes MaxEventSize fails the
// request as it does on the writer's goroutine — ErrInvalid wrapping the
// encoder's error, the encoder's panic in the appender, ErrInvalid — and
// when both parts fail, the error is the earlier event's. Nothing of the
// request is written, and the log then appends on both goroutines again.
func TestParallelEncodeFailures(t *testing.T) {
	const n = 300
	ctx := t.Context()
	l := openMem(t, vfs.NewMem(), Options{})
	defer l.Close()
	l.w.encodeCut = func(events int) int { return events / 2 }
	tl := Typed[failingPayload](l)
	batch := func(bad map[int]failingPayload) []Event[failingPayload] {
		evs := make([]Event[failingPayload], n)
		for i := range evs {
			evs[i] = Event[failingPayload]{Type: "t", Data: bad[i]}
		}
		return evs
	}
	if _, err := tl.Append(ctx, "s", ExpectAny, batch(map[int]failingPayload{n - 1: {Fail: true}})...); !errors.Is(err, ErrInvalid) || !errors.Is(err, errPayload) {
		t.Fatalf("a failing payload in the second part: %v, want ErrInvalid wrapping %v", err, errPayload)
	}
	panics := func(bad map[int]failingPayload) (p any) {
		defer func() { p = recover() }()
		tl.Append(ctx, "s", ExpectAny, batch(bad)...)
		return nil
	}
	if p := panics(map[int]failingPayload{n - 1: {Panic: true}}); p != "payload panicked" {
		t.Fatalf("a panicking payload in the second part: recovered %v, want the encoder's panic value", p)
	}
	// Both parts fail: the earlier event's failure is the request's.
	if _, err := tl.Append(ctx, "s", ExpectAny, batch(map[int]failingPayload{3: {Fail: true}, n - 1: {Panic: true}})...); !errors.Is(err, errPayload) {
		t.Fatalf("a failing payload in the first part, a panicking one in the second: %v, want %v", err, errPayload)
	}
	if p := panics(map[int]failingPayload{3: {Panic: true}, n - 1: {Fail: true}}); p != "payload panicked" {
		t.Fatalf("a panicking payload in the first part, a failing one in the second: recovered %v, want the panic", p)
	}
	pos, err := tl.Append(ctx, "s", ExpectNoStream, batch(nil)...)
	if err != nil || pos.Seq != n || pos.Version != n {
		t.Fatalf("append after the failures: %+v, %v; want seq and version %d in a new stream", pos, err, n)
	}

	sl := openMem(t, vfs.NewMem(), Options{MaxEventSize: 1000})
	defer sl.Close()
	sl.w.encodeCut = func(events int) int { return events / 2 }
	evs := make([]Event[sizedPayload], n)
	for i := range evs {
		evs[i] = Event[sizedPayload]{Type: "t", Data: sized(10)}
	}
	evs[n-1].Data = sized(990)
	if _, err := Typed[sizedPayload](sl).Append(ctx, "s", ExpectAny, evs...); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an event over MaxEventSize in the second part: %v, want ErrInvalid", err)
	}
	if got := readAll(t, sl); len(got) != 0 {
		t.Fatalf("%d events in the log after a refused request, want 0", len(got))
	}
	if got := readAll(t, l); len(got) != n {
		t.Fatalf("%d events in the log, want %d", len(got), n)
	}
}

// streamSeqs reads every stream of l through the stream index: its
// events' seqs, and their payloads' lengths.
func streamSeqs(t *testing.T, l *Log) map[string][]uint64 {
	t.Helper()
	out := map[string][]uint64{}
	for _, e := range readAll(t, l) {
		if _, ok := out[e.Stream]; ok {
			continue
		}
		for ev, err := range l.Stream(t.Context(), e.Stream, 0) {
			if err != nil {
				t.Fatalf("reading stream %s: %v", e.Stream, err)
			}
			out[e.Stream] = append(out[e.Stream], ev.Seq, uint64(len(ev.Data)))
		}
	}
	return out
}
