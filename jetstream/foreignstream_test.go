package jetstream_test

import (
	"errors"
	"net"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
)

// TestAppendReachingAnotherStream: the account maps the log's subjects to
// another stream's (a misconfigured server, subjects routed elsewhere), so
// an append reaches that stream, not the log's. The events are not in the
// log: the append must never succeed, must fail with a
// *ForeignStreamError (ErrForeignStream) naming the log's stream, must not
// be taken for an unknown outcome (retrying it cannot help), and must
// store nothing anywhere: every message names the log's stream, which the
// other stream refuses. Before, the other stream stored the events and the
// append failed with a plain error.
func TestAppendReachingAnotherStream(t *testing.T) {
	s := startServer(t)
	js := connect(t, s.ClientURL())
	for _, shape := range []struct {
		name string
		reqs []evlog.AppendRequest
	}{
		{"single", []evlog.AppendRequest{{Stream: "a", Events: []event.Envelope{ev("a1")}}}},
		{"batch", []evlog.AppendRequest{
			{Stream: "a", Events: []event.Envelope{ev("a1"), ev("a2")}},
			{Stream: "b", Events: []event.Envelope{ev("b1")}},
		}},
	} {
		t.Run(shape.name, func(t *testing.T) {
			ctx := t.Context()
			l := openLog(t, js, evjs.Config{Replicas: 1})
			other, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ELSEWHERE_" + l.Name(),
				Subjects: []string{"elsewhere." + l.Name() + ".>"}, AllowAtomicPublish: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.GlobalAccount().AddMapping("evlog."+l.Name()+".>", "elsewhere."+l.Name()+".>"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.GlobalAccount().RemoveMapping("evlog." + l.Name() + ".>") })

			pos, err := l.AppendBatch(ctx, shape.reqs)
			if err == nil {
				t.Fatalf("append that reached another stream succeeded at %+v", pos)
			}
			fe, ok := errors.AsType[*evjs.ForeignStreamError](err)
			if !ok || !errors.Is(err, evjs.ErrForeignStream) {
				t.Errorf("append that reached another stream: %v; want a *ForeignStreamError (ErrForeignStream)", err)
			} else if fe.Stream != l.StreamName() || fe.Stored {
				t.Errorf("ForeignStreamError %+v, want stream %s, not stored", fe, l.StreamName())
			}
			if errors.Is(err, evjs.ErrUnknownOutcome) {
				t.Errorf("append refused by another stream reported ErrUnknownOutcome: %v", err)
			}
			info, err := other.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Msgs != 0 {
				t.Errorf("the other stream stored %d messages, want none", info.State.Msgs)
			}
			if n := len(allEvents(t, l)); n != 0 {
				t.Errorf("the log holds %d events, want none", n)
			}
		})
	}
}

// TestAckFromAnotherStream: an acknowledgement naming another stream than
// the log's (a server that stored the events there despite the
// Nats-Expected-Stream header; here the fault proxy rewrites the answer's
// stream name). It must never count as success, nor be retried (a retry
// would store the events there again): a *ForeignStreamError naming both
// streams, Stored set. Before, it was a plain error.
func TestAckFromAnotherStream(t *testing.T) {
	s := startServer(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Addr().(*net.TCPAddr).Port))
	for _, shape := range []struct {
		name string
		reqs []evlog.AppendRequest
		n    int // the publish whose answer names another stream: the commit
	}{
		{"single", []evlog.AppendRequest{{Stream: "a", Events: []event.Envelope{ev("a1")}}}, 1},
		{"batch", []evlog.AppendRequest{
			{Stream: "a", Events: []event.Envelope{ev("a1"), ev("a2")}},
			{Stream: "b", Events: []event.Envelope{ev("b1")}},
		}, 3},
	} {
		t.Run(shape.name, func(t *testing.T) {
			t.Parallel()
			p := startFaultProxy(t, addr)
			l := openLog(t, connectVia(t, p.URL(), proxyTimeout), evjs.Config{Replicas: 1, Timeout: proxyTimeout})
			p.arm("evlog."+l.Name()+".", faultForeign, shape.n, nil, false)
			pos, err := l.AppendBatch(t.Context(), shape.reqs)
			if fired, answered := p.hasFired(); !fired || !answered {
				t.Fatalf("the fault did not happen (fired %v, answered %v)", fired, answered)
			}
			if err == nil {
				t.Fatalf("append acknowledged by another stream succeeded at %+v", pos)
			}
			fe, ok := errors.AsType[*evjs.ForeignStreamError](err)
			if !ok || !errors.Is(err, evjs.ErrForeignStream) {
				t.Fatalf("append acknowledged by another stream: %v; want a *ForeignStreamError (ErrForeignStream)", err)
			}
			want := evjs.ForeignStreamError{Stream: l.StreamName(), Other: "ELSEWHERE_" + l.StreamName(), Seq: fe.Seq, Stored: true}
			if *fe != want || fe.Seq == 0 {
				t.Errorf("ForeignStreamError %+v, want %+v with a seq", *fe, want)
			}
			if errors.Is(err, evjs.ErrUnknownOutcome) {
				t.Errorf("append acknowledged by another stream reported ErrUnknownOutcome: %v", err)
			}
			// The proxy only rewrote the answer: the log's stream stored
			// the events, once, if the append was not retried.
			sent := 0
			for _, r := range shape.reqs {
				sent += len(r.Events)
			}
			if n := len(allEvents(t, l)); n != sent {
				t.Errorf("the log holds %d events, want %d: the append was retried", n, sent)
			}
		})
	}
}
