package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
)

// countingHandler counts the log records at Warn and above: the append's
// "retrying" warnings, the proof that a fault reached it.
type countingHandler struct{ n atomic.Int64 }

func (h *countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *countingHandler) Handle(context.Context, slog.Record) error    { h.n.Add(1); return nil }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *countingHandler) WithGroup(string) slog.Handler                { return h }

// proxyTimeout is how long a client through the fault proxy waits for an
// answer before taking it for lost: the proxy drops answers, so every
// fault costs one. A legitimate answer later than this only adds a retry,
// which the append must survive as well.
const proxyTimeout = 2 * time.Second

// TestLostAnswerOnEveryPartOfABatch: a two-stream, three-event atomic
// append is three publishes (the first and the commit answered); the
// fault proxy loses the answer to each answered one, or cuts the
// connection once the server received each, in turn, alone, with another
// writer appending to both streams when the fault happens, with the
// server forgetting the first attempt's IDs (a retry after the duplicate
// window), or with the answer to the next read of a stream's head lost as
// well. Each append must end in success at the positions its events
// are stored at, stored exactly once; or, when nothing was committed and
// its expectation no longer holds, in a conflict or ErrUnknownOutcome.
// Never a plain failure for a committed write, never a double store.
func TestLostAnswerOnEveryPartOfABatch(t *testing.T) {
	s := startServer(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Addr().(*net.TCPAddr).Port))
	type mode int
	const (
		alone mode = iota
		otherWriter
		afterWindow
		readLost // the answer to the next read of a stream's head is lost too
	)
	modes := map[mode]string{alone: "alone", otherWriter: "other-writer", afterWindow: "after-window", readLost: "read-lost"}
	type fault struct {
		kind faultKind
		n    int
	}
	batch := []evlog.AppendRequest{
		{Stream: "a", Events: []event.Envelope{ev("a1"), ev("a2")}},
		{Stream: "b", Events: []event.Envelope{ev("b1")}},
	}
	single := []evlog.AppendRequest{{Stream: "a", Events: []event.Envelope{ev("a1")}}}
	for _, shape := range []struct {
		name   string
		reqs   []evlog.AppendRequest
		faults []fault
	}{
		{"batch", batch, []fault{{faultDrop, 1}, {faultDrop, 3}, {faultCut, 1}, {faultCut, 2}, {faultCut, 3}}},
		{"single", single, []fault{{faultDrop, 1}, {faultCut, 1}}},
	} {
		for _, f := range shape.faults {
			for _, m := range []mode{alone, otherWriter, afterWindow, readLost} {
				expects := []event.Expectation{evlog.ExpectAny}
				if m == otherWriter {
					expects = append(expects, evlog.ExpectNoStream)
				}
				for _, expect := range expects {
					name := fmt.Sprintf("%s/%v-%d/%s/%d", shape.name, f.kind, f.n, modes[m], int64(expect))
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						p := startFaultProxy(t, addr)
						warns := &countingHandler{}
						l := openLog(t, connectVia(t, p.URL(), proxyTimeout), evjs.Config{Replicas: 1, Retries: 5,
							Timeout: proxyTimeout, Logger: slog.New(warns)})
						other := openLog(t, connect(t, s.ClientURL()), evjs.Config{Name: l.Name(), Replicas: 1})
						ctx := t.Context()
						otherErr := make(chan error, 1)
						var after func()
						if m == otherWriter {
							after = func() {
								_, err := other.AppendBatch(ctx, []evlog.AppendRequest{
									{Stream: "a", Expect: evlog.ExpectAny, Events: []event.Envelope{ev("theirs")}},
									{Stream: "b", Expect: evlog.ExpectAny, Events: []event.Envelope{ev("theirs")}},
								})
								otherErr <- err
							}
						}
						var firstFired atomic.Bool
						if m == readLost {
							after = func() {
								firstFired.Store(true)
								p.arm("$JS.API.STREAM.MSG.GET.", faultDrop, 1, nil, false)
							}
						}
						p.arm("evlog."+l.Name()+".", f.kind, f.n, after, m == afterWindow)
						reqs := make([]evlog.AppendRequest, len(shape.reqs))
						var types []string // of the append's events
						for i, r := range shape.reqs {
							reqs[i] = evlog.AppendRequest{Stream: r.Stream, Expect: expect, Events: r.Events}
							for _, e := range r.Events {
								types = append(types, e.Type)
							}
						}
						pos, err := l.AppendBatch(ctx, reqs)
						fired, answered := p.hasFired()
						if m == readLost {
							// The read fault fires only if the append reads
							// again, which a cut it did not notice spares.
							fired, answered = firstFired.Load(), false
						}
						if !fired {
							t.Fatal("the fault never happened")
						}
						if m == otherWriter {
							// The hook ran before the fault reached the client.
							if err := receive(t, otherErr, "the other writer's append, from the fault's hook"); err != nil {
								t.Fatal(err)
							}
						}
						// A cut after a publish that asks for no answer may
						// go unnoticed: the rest of the batch can reach the
						// server over the next connection.
						if answered && warns.n.Load() == 0 {
							t.Error("the append did not notice the lost answer (no retry)")
						}
						// Read through other, on a direct connection: in
						// after-window mode the proxy rewrote the Nats-Msg-Ids
						// of l's resent messages, so l finds another event
						// than the one it stored at its last seq and takes
						// the stream for replaced (a real server stores the
						// IDs as sent).
						stored := map[string][]event.Envelope{}
						for _, e := range allEvents(t, other) {
							stored[e.Type] = append(stored[e.Type], e)
						}
						n := len(stored["a1"])
						for _, typ := range types {
							if len(stored[typ]) > 1 {
								t.Fatalf("event %s stored %d times", typ, len(stored[typ]))
							}
							if len(stored[typ]) != n {
								t.Fatalf("the atomic append is stored in part: %v", stored)
							}
						}
						switch {
						case n == 1 && err == nil:
							var want []event.Position
							for _, r := range reqs {
								e := stored[r.Events[len(r.Events)-1].Type][0]
								want = append(want, event.Position{Seq: e.Seq, Version: e.Version, Time: e.Time})
							}
							if diff := cmp.Diff(want, pos); diff != "" {
								t.Errorf("positions differ from those the events are stored at (-stored +returned):\n%s", diff)
							}
							t.Logf("committed once, positions %+v", pos)
						case n == 1:
							t.Logf("committed once, reported %v", err)
							if !errors.Is(err, evjs.ErrUnknownOutcome) {
								t.Errorf("committed append reported %v, want success (or ErrUnknownOutcome)", err)
							}
						case err == nil:
							t.Errorf("append reported committed at %+v, but the log does not hold it", pos)
						case expect == evlog.ExpectAny:
							t.Errorf("an ExpectAny append that was not committed ended in %v, want it committed by a retry", err)
						case !errors.Is(err, evlog.ErrVersionConflict) && !errors.Is(err, evjs.ErrUnknownOutcome):
							t.Errorf("append not committed ended in %v, want a conflict (the other writer moved the streams) or ErrUnknownOutcome", err)
						}
					})
				}
			}
		}
	}
}
