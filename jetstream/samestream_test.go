package jetstream_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
)

// TestBatchNamingAStreamTwiceAsFileLog: an AppendBatch naming one stream
// in two requests has the file log's outcome: each request's expectation
// is checked against the stream's version after the requests before it in
// the batch, and the positions follow. The JetStream log used to refuse
// every such batch with ErrInvalid.
func TestBatchNamingAStreamTwiceAsFileLog(t *testing.T) {
	s := startServer(t)
	for _, tc := range []struct {
		name  string
		batch []evlog.AppendRequest
	}{
		{"chained expectations", []evlog.AppendRequest{
			{Stream: "s", Expect: evlog.ExpectNoStream, Events: []event.Envelope{ev("a")}},
			{Stream: "t", Expect: evlog.ExpectAny, Events: []event.Envelope{ev("b")}},
			{Stream: "s", Expect: 1, Events: []event.Envelope{ev("c"), ev("d")}},
		}},
		{"second expectation stale", []evlog.AppendRequest{
			{Stream: "s", Expect: evlog.ExpectNoStream, Events: []event.Envelope{ev("a")}},
			{Stream: "s", Expect: evlog.ExpectNoStream, Events: []event.Envelope{ev("c")}},
		}},
		{"any twice", []evlog.AppendRequest{
			{Stream: "s", Expect: evlog.ExpectAny, Events: []event.Envelope{idEv("a", "twice/a")}},
			{Stream: "s", Expect: evlog.ExpectAny, Events: []event.Envelope{idEv("c", "twice/c")}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fl, err := evlog.Open(t.TempDir(), evlog.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer fl.Close()
			js := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1})
			ctx := t.Context()
			wantPos, wantErr := fl.AppendBatch(ctx, tc.batch)
			gotPos, gotErr := js.AppendBatch(ctx, tc.batch)
			if (wantErr == nil) != (gotErr == nil) || errors.Is(wantErr, evlog.ErrVersionConflict) != errors.Is(gotErr, evlog.ErrVersionConflict) {
				t.Fatalf("JetStream: %v; file log: %v", gotErr, wantErr)
			}
			if diff := cmp.Diff(wantPos, gotPos, cmpopts.IgnoreFields(event.Position{}, "Time")); diff != "" {
				t.Errorf("positions (-file log +JetStream):\n%s", diff)
			}
			if wantErr != nil {
				return
			}
			if tc.name != "any twice" {
				return
			}
			// A retry of a batch whose events carry IDs is recognised.
			again, err := js.AppendBatch(ctx, tc.batch)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if diff := cmp.Diff(gotPos, again); diff != "" {
				t.Errorf("retry positions (-first +retry):\n%s", diff)
			}
		})
	}
}
