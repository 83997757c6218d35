package jetstream_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

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
	case errors.Is(err, evlog.ErrInvalid):
		return "invalid"
	}
	return "other: " + err.Error()
}

// TestAppendContractAsFileLog runs the same random appends on a file log
// and on a JetStream log and requires the same outcome (success, conflict,
// duplicate ID, invalid) and positions (time aside) for each, and the same
// events in the end: appends with and without IDs, exact, stale and
// ExpectAny expectations, batches naming several streams (one of them
// twice), and retries of earlier appends, whole, in part, changed, or with
// their IDs moved to another stream.
func TestAppendContractAsFileLog(t *testing.T) {
	s := startServer(t)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	fl, err := evlog.Open(t.TempDir(), evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	js := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1})
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
			req := evlog.AppendRequest{Stream: st, Expect: expect}
			withIDs := rng.IntN(3) > 0
			for range 1 + rng.IntN(3) {
				e := event.Envelope{Type: fmt.Sprint("t", rng.IntN(3)), Data: fmt.Appendf(nil, "%d", rng.IntN(4))}
				if withIDs {
					ids++
					e.ID = fmt.Sprint("id-", ids)
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
	for op := range 300 {
		var batch []evlog.AppendRequest
		kind := "new"
		if len(sent) > 0 && rng.IntN(3) == 0 {
			batch = clone(sent[rng.IntN(len(sent))])
			switch rng.IntN(5) {
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
			default:
				kind = "retry in another stream"
				r := &batch[rng.IntN(len(batch))]
				r.Stream = "other"
			}
		} else {
			batch = newBatch()
		}
		wantPos, wantErr := fl.AppendBatch(ctx, batch)
		gotPos, gotErr := js.AppendBatch(ctx, batch)
		if kind == "retry in another stream" && outcome(wantErr) == "duplicate ID" && outcome(gotErr) == "conflict" {
			// Documented: JetStream finds the holder of an ID only in
			// the append's own streams, or through the server's refusal,
			// which a failing expectation pre-empts.
			wantErr = gotErr
		}
		if outcome(wantErr) != outcome(gotErr) {
			t.Fatalf("op %d (%s) %+v:\nfile log:  %v\nJetStream: %v", op, kind, batch, wantErr, gotErr)
		}
		if diff := cmp.Diff(wantPos, gotPos, cmpopts.IgnoreFields(event.Position{}, "Time")); diff != "" {
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
	if diff := cmp.Diff(want, allEvents(t, js), cmpopts.IgnoreFields(event.Envelope{}, "Time"), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("the logs differ (-file log +JetStream):\n%s", diff)
	}
}
