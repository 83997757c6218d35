package jetstream_test

import (
	"fmt"
	"net"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
)

// TestGarbledAnswerIsNoPlainFailure: the server commits an append, but
// its answer reaches the client as bytes that are no JSON, or as JSON that
// is no acknowledgement (nats.go's ErrInvalidJSAck, jetstreamext's
// ErrInvalidBatchAck). The events are in the log, so the append must not
// end in a plain failure (the caller would retry with new IDs, or give
// up): it settles the outcome as after a lost answer, finds its events and
// returns their positions, stored once. The expectation (no stream yet)
// no longer holds after the commit, so a blind resend would conflict.
func TestGarbledAnswerIsNoPlainFailure(t *testing.T) {
	s := startServer(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Addr().(*net.TCPAddr).Port))
	for _, shape := range []struct {
		name string
		reqs []evlog.AppendRequest
		n    int // the publish whose answer is garbled: the commit
	}{
		{"single", []evlog.AppendRequest{{Stream: "a", Expect: evlog.ExpectNoStream, Events: []event.Envelope{ev("a1")}}}, 1},
		{"batch", []evlog.AppendRequest{
			{Stream: "a", Expect: evlog.ExpectNoStream, Events: []event.Envelope{ev("a1"), ev("a2")}},
			{Stream: "b", Expect: evlog.ExpectNoStream, Events: []event.Envelope{ev("b1")}},
		}, 3},
	} {
		for _, kind := range []faultKind{faultGarble, faultBlank} {
			t.Run(fmt.Sprintf("%s/%v", shape.name, kind), func(t *testing.T) {
				t.Parallel()
				p := startFaultProxy(t, addr)
				l := openLog(t, connectVia(t, p.URL(), proxyTimeout), evjs.Config{Replicas: 1, Retries: 5, Timeout: proxyTimeout})
				p.arm("evlog."+l.Name()+".", kind, shape.n, nil, false)
				pos, err := l.AppendBatch(t.Context(), shape.reqs)
				if fired, answered := p.hasFired(); !fired || !answered {
					t.Fatalf("the fault did not happen (fired %v, answered %v)", fired, answered)
				}
				stored := map[string][]event.Envelope{}
				for _, e := range allEvents(t, l) {
					stored[e.Type] = append(stored[e.Type], e)
				}
				for _, r := range shape.reqs {
					for _, e := range r.Events {
						if len(stored[e.Type]) != 1 {
							t.Fatalf("event %s stored %d times, want once (the server committed the append)", e.Type, len(stored[e.Type]))
						}
					}
				}
				if err != nil {
					t.Fatalf("append committed by the server, its answer garbled, ended in %v; want success at the stored positions", err)
				}
				var want []event.Position
				for _, r := range shape.reqs {
					e := stored[r.Events[len(r.Events)-1].Type][0]
					want = append(want, event.Position{Seq: e.Seq, Version: e.Version, Time: e.Time})
				}
				if diff := cmp.Diff(want, pos); diff != "" {
					t.Errorf("positions differ from those the events are stored at (-stored +returned):\n%s", diff)
				}
			})
		}
	}
}
