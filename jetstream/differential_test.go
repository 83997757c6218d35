package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
)

// outcome is an append's result as the two backends must agree on it.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, evlog.ErrDuplicateID):
		return "duplicate ID"
	case errors.Is(err, evlog.ErrVersionConflict):
		return "conflict"
	case errors.Is(err, evlog.ErrTimeBackwards):
		return "time backwards"
	case errors.Is(err, evlog.ErrFutureTime):
		return "future time"
	case errors.Is(err, evlog.ErrInvalid):
		return "invalid"
	}
	return "other: " + err.Error()
}

// TestAppendContractAsFileLog runs the same random appends on a file log
// and on a JetStream log, sharing one clock, and requires the same outcome
// (success, conflict, duplicate ID, invalid, time backwards or in the
// future) and positions for each, and the same events in the end (two
// JetStream writers taking turns): appends with and without IDs, exact, stale and
// ExpectAny expectations, batches naming several streams (one of them
// twice), and retries of earlier appends, whole, in part, changed, or with
// their IDs moved to another stream.
func TestAppendContractAsFileLog(t *testing.T) {
	s := startServer(t)
	appendContractAsFileLog(t, s.ClientURL(), s.ClientURL(), 1, 300)
}

// TestAppendContractAsFileLogR3 is TestAppendContractAsFileLog on a
// 3-node cluster, the two writers connected to different nodes (reads may
// be served by replicas behind the leader).
func TestAppendContractAsFileLogR3(t *testing.T) {
	nodes := startCluster(t)
	waitForR3(t, connect(t, nodes[0].ClientURL()))
	appendContractAsFileLog(t, nodes[0].ClientURL(), nodes[1].ClientURL(), 3, 100)
}

// appendContractAsFileLog runs ops random appends on a file log and on a
// JetStream log of replicas copies written through url1 and url2.
func appendContractAsFileLog(t *testing.T, url1, url2 string, replicas, ops int) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	// One clock for both, moved by the test between appends, so that
	// stamped times, ErrTimeBackwards and ErrFutureTime must agree too.
	var clock atomic.Int64
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock.Store(t0.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	fl, err := evlog.Open(t.TempDir(), evlog.Options{Clock: now})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	// Two writers on the JetStream log, taking turns at random: each knows
	// only what it read or wrote of the log's end.
	js1 := openLog(t, connect(t, url1), evjs.Config{Replicas: replicas, Clock: now})
	js2 := openLog(t, connect(t, url2), evjs.Config{Name: js1.Name(), Replicas: replicas, Clock: now})
	ctx := t.Context()
	streams := []string{"a", "b", "c"}
	version := map[string]uint64{} // as the file log reports them
	var sent [][]evlog.AppendRequest
	ids := 0
	newBatch := func() []evlog.AppendRequest {
		var batch []evlog.AppendRequest
		for range 1 + rng.IntN(3) {
			st := streams[rng.IntN(len(streams))]
			var expect event.Expectation
			switch rng.IntN(4) {
			case 0:
				expect = evlog.ExpectAny
			case 1:
				expect = event.Expectation(version[st]) // current (unless an earlier request moves it)
			case 2:
				expect = evlog.ExpectNoStream
			default:
				expect = event.Expectation(rng.IntN(int(version[st]) + 2))
			}
			if rng.IntN(30) == 0 {
				st = []string{"", "bad\x00stream", "ä.b*>"}[rng.IntN(3)]
			}
			req := evlog.AppendRequest{Stream: st, Expect: expect}
			withIDs := rng.IntN(3) > 0
			for range 1 + rng.IntN(3) {
				e := event.Envelope{Type: fmt.Sprint("t", rng.IntN(3)), Data: fmt.Appendf(nil, "%d", rng.IntN(4))}
				if rng.IntN(4) == 0 {
					e.Meta = map[string]string{"m": fmt.Sprint(rng.IntN(2))}
				}
				if rng.IntN(4) == 0 {
					e.SchemaVersion = uint32(1 + rng.IntN(2))
				}
				if rng.IntN(4) == 0 { // an explicit time: past, now, or ahead (by more than the skew allowed, at times)
					e.Time = now().Add([]time.Duration{-time.Second, 0, 30 * time.Second, 2 * time.Minute}[rng.IntN(4)])
				}
				if withIDs {
					ids++
					e.ID = fmt.Sprint("id-", ids, []string{"", "/ü x", ".*>", "=41"}[rng.IntN(4)])
				}
				switch rng.IntN(40) { // now and then, an event the logs must refuse alike
				case 0:
					e.Type = "bad\ntype"
				case 1:
					e.Type = ""
				case 2:
					e.Seq = 7
				case 3:
					e.Stream = "elsewhere"
				case 4:
					e.Time = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)
				}
				req.Events = append(req.Events, e)
			}
			batch = append(batch, req)
		}
		return batch
	}
	clone := func(b []evlog.AppendRequest) []evlog.AppendRequest {
		out := make([]evlog.AppendRequest, len(b))
		for i, r := range b {
			out[i] = r
			out[i].Events = slices.Clone(r.Events)
		}
		return out
	}
	for op := range ops {
		clock.Add(int64(rng.IntN(3)) * int64(time.Second))
		var batch []evlog.AppendRequest
		kind := "new"
		if len(sent) > 0 && rng.IntN(3) == 0 {
			batch = clone(sent[rng.IntN(len(sent))])
			switch rng.IntN(9) {
			case 0:
				kind = "retry"
			case 1:
				kind = "retry with ExpectAny"
				for i := range batch {
					batch[i].Expect = evlog.ExpectAny
				}
			case 2:
				kind = "retry of a prefix"
				batch = batch[:1]
				batch[0].Events = batch[0].Events[:1+rng.IntN(len(batch[0].Events))]
			case 3:
				kind = "retry with changed data"
				r := &batch[rng.IntN(len(batch))]
				r.Events[rng.IntN(len(r.Events))].Data = []byte("changed")
			case 5:
				kind = "retry with another type, schema version or meta"
				r := &batch[rng.IntN(len(batch))]
				e := &r.Events[rng.IntN(len(r.Events))]
				switch rng.IntN(3) {
				case 0:
					e.Type += "x"
				case 1:
					e.SchemaVersion = 2
				default:
					e.Meta = map[string]string{"k": "v"}
				}
			case 6:
				kind = "retry with the requests swapped"
				slices.Reverse(batch)
			case 7:
				kind = "retry with times cleared"
				for i := range batch {
					for j := range batch[i].Events {
						batch[i].Events[j].Time = time.Time{}
					}
				}
			default:
				kind = "retry in another stream"
				r := &batch[rng.IntN(len(batch))]
				r.Stream = "other"
			}
		} else {
			batch = newBatch()
		}
		wantPos, wantErr := fl.AppendBatch(ctx, batch)
		js := js1
		if rng.IntN(2) == 0 {
			js = js2
		}
		gotPos, gotErr := js.AppendBatch(ctx, batch)
		if kind == "retry in another stream" && outcome(wantErr) == "duplicate ID" && (outcome(gotErr) == "conflict" || outcome(gotErr) == "time backwards") {
			// Documented: JetStream finds the holder of an ID only in
			// the append's own streams, or through the server's refusal,
			// which a failing expectation or time check pre-empts.
			wantErr = gotErr
		}
		if outcome(wantErr) != outcome(gotErr) {
			t.Fatalf("op %d (%s) %+v:\nfile log:  %v\nJetStream: %v", op, kind, batch, wantErr, gotErr)
		}
		if diff := cmp.Diff(wantPos, gotPos); diff != "" {
			t.Fatalf("op %d (%s) %+v: positions (-file log +JetStream):\n%s", op, kind, batch, diff)
		}
		if wantErr == nil && kind == "new" {
			sent = append(sent, batch)
		}
		for i, r := range batch {
			if wantErr == nil {
				version[r.Stream] = max(version[r.Stream], wantPos[i].Version)
			}
		}
	}
	var want []event.Envelope
	for e, err := range fl.Range(ctx, 1, fl.LastSeq()) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, e.Clone())
	}
	if diff := cmp.Diff(want, allEvents(t, js1), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("the logs differ (-file log +JetStream):\n%s", diff)
	}
	// And the reads agree: Range windows, Stream from a version (read by
	// the writer that did not write last, and by the other), SeqAt.
	collect := func(seq func(func(event.Envelope, error) bool)) []event.Envelope {
		var out []event.Envelope
		for e, err := range seq {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e.Clone())
		}
		return out
	}
	last := fl.LastSeq()
	for range 30 {
		from, to := uint64(rng.IntN(int(last)+2)), uint64(rng.IntN(int(last)+3))
		if diff := cmp.Diff(collect(fl.Range(ctx, from, to)), collect(js2.Range(ctx, from, to)), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Range(%d, %d) (-file log +JetStream):\n%s", from, to, diff)
		}
		st := append(streams, "other", "nothing")[rng.IntN(len(streams)+2)]
		v := uint64(rng.IntN(int(version[st]) + 2))
		for _, js := range []*evjs.Log{js1, js2} {
			if diff := cmp.Diff(collect(fl.Stream(ctx, st, v)), collect(js.Stream(ctx, st, v)), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Stream(%q, %d) (-file log +JetStream):\n%s", st, v, diff)
			}
		}
		at := t0.Add(time.Duration(rng.IntN(int(time.Unix(0, clock.Load()).Sub(t0)/time.Second)+60)-30) * time.Second)
		ws, werr := fl.SeqAt(ctx, at)
		gs, gerr := js1.SeqAt(ctx, at)
		if ws != gs || (werr == nil) != (gerr == nil) {
			t.Errorf("SeqAt(%v): file log %d, %v; JetStream %d, %v", at, ws, werr, gs, gerr)
		}
	}
}

// TestCheckOrderAsFileLog: an append failing two checks reports the one
// the file log reports: requests are checked in order, each one's
// expectation and then its events' times. JetStream checked every
// expectation first, so a batch whose first request went back in time and
// whose second had a stale expectation was a conflict, not
// ErrTimeBackwards.
func TestCheckOrderAsFileLog(t *testing.T) {
	s := startServer(t)
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return at }
	for _, tc := range []struct {
		name  string
		batch []evlog.AppendRequest
	}{
		{"time then conflict", []evlog.AppendRequest{
			{Stream: "s", Expect: evlog.ExpectAny, Events: []event.Envelope{{Type: "e", Time: at.Add(-time.Hour)}}},
			{Stream: "t", Expect: 5, Events: []event.Envelope{ev("e")}},
		}},
		{"conflict then time", []evlog.AppendRequest{
			{Stream: "t", Expect: 5, Events: []event.Envelope{ev("e")}},
			{Stream: "s", Expect: evlog.ExpectAny, Events: []event.Envelope{{Type: "e", Time: at.Add(-time.Hour)}}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fl, err := evlog.Open(t.TempDir(), evlog.Options{Clock: now})
			if err != nil {
				t.Fatal(err)
			}
			defer fl.Close()
			js := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1, Clock: now})
			ctx := t.Context()
			for _, l := range []interface {
				Append(context.Context, string, event.Expectation, ...event.Envelope) (event.Position, error)
			}{fl, js} {
				if _, err := l.Append(ctx, "x", evlog.ExpectAny, ev("first")); err != nil {
					t.Fatal(err)
				}
			}
			_, wantErr := fl.AppendBatch(ctx, tc.batch)
			_, gotErr := js.AppendBatch(ctx, tc.batch)
			if outcome(wantErr) != outcome(gotErr) {
				t.Errorf("file log: %v\nJetStream: %v", wantErr, gotErr)
			}
		})
	}
}

// TestCheckOrderAfterAnotherWriter: the file log's check order holds for
// a writer that has not seen another writer's later append: the times of
// the requests before a conflicting one are checked against the log's
// real end, not the end this writer last saw.
func TestCheckOrderAfterAnotherWriter(t *testing.T) {
	s := startServer(t)
	var clock atomic.Int64
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock.Store(at.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	fl, err := evlog.Open(t.TempDir(), evlog.Options{Clock: now})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	js1 := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1, Clock: now})
	js2 := openLog(t, connect(t, s.ClientURL()), evjs.Config{Name: js1.Name(), Replicas: 1, Clock: now})
	ctx := t.Context()
	for _, l := range []interface {
		Append(context.Context, string, event.Expectation, ...event.Envelope) (event.Position, error)
	}{fl, js1} {
		if _, err := l.Append(ctx, "x", evlog.ExpectAny, ev("first")); err != nil {
			t.Fatal(err)
		}
	}
	clock.Add(int64(time.Hour))
	for _, l := range []interface {
		Append(context.Context, string, event.Expectation, ...event.Envelope) (event.Position, error)
	}{fl, js2} {
		if _, err := l.Append(ctx, "x", evlog.ExpectAny, ev("later")); err != nil {
			t.Fatal(err)
		}
	}
	batch := []evlog.AppendRequest{
		{Stream: "s", Expect: evlog.ExpectAny, Events: []event.Envelope{{Type: "e", Time: at.Add(30 * time.Minute)}}},
		{Stream: "t", Expect: 5, Events: []event.Envelope{ev("e")}},
	}
	_, wantErr := fl.AppendBatch(ctx, batch)
	_, gotErr := js1.AppendBatch(ctx, batch)
	if outcome(wantErr) != outcome(gotErr) {
		t.Errorf("file log: %v\nJetStream (a writer that has not seen the later append): %v", wantErr, gotErr)
	}
}
