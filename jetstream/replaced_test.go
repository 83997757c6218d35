package jetstream_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
)

// TestStreamReplacedWhileOpen: the log's stream is deleted and recreated
// under the same name (by another Open) while a Log is open, and the new
// stream holds fewer events than the Log has seen. The Log must not append
// against, nor report, the old stream's end: an append fails with
// ErrStreamReplaced (a *StreamReplacedError) and writes nothing, and from
// then on the Log refuses work (reads included) with it; LastSeq never
// reports more than the truth. Before, the append retried against the
// cached last seq until it gave up, and LastSeq kept the old stream's.
func TestStreamReplacedWhileOpen(t *testing.T) {
	s := startServer(t)
	ctx := t.Context()
	js := connect(t, s.ClientURL())
	l := openLog(t, js, evjs.Config{Replicas: 1})
	for _, typ := range []string{"old1", "old2", "old3"} {
		if _, err := l.Append(ctx, "s", evlog.ExpectAny, ev(typ)); err != nil {
			t.Fatal(err)
		}
	}
	if err := js.DeleteStream(ctx, l.StreamName()); err != nil {
		t.Fatal(err)
	}
	other := openLog(t, connect(t, s.ClientURL()), evjs.Config{Name: l.Name(), Replicas: 1})
	if _, err := other.Append(ctx, "s", evlog.ExpectAny, ev("new1")); err != nil {
		t.Fatal(err)
	}

	_, err := l.Append(ctx, "s", evlog.ExpectAny, ev("mine"))
	if !errors.Is(err, evjs.ErrStreamReplaced) {
		t.Fatalf("append to a replaced stream: %v; want ErrStreamReplaced", err)
	}
	if errors.Is(err, evjs.ErrUnknownOutcome) {
		t.Errorf("append refused before sending reported ErrUnknownOutcome: %v", err)
	}
	re, ok := errors.AsType[*evjs.StreamReplacedError](err)
	if !ok {
		t.Fatalf("%v is no *StreamReplacedError", err)
	}
	if re.Stream != l.StreamName() || re.Seen != 3 || re.Last != 1 {
		t.Errorf("StreamReplacedError %+v, want stream %s, seen 3, last 1", re, l.StreamName())
	}
	if got := l.LastSeq(); got != 1 {
		t.Errorf("LastSeq = %d, want 1 (the new stream's)", got)
	}
	for _, err := range l.Range(ctx, 1, 10) {
		if !errors.Is(err, evjs.ErrStreamReplaced) {
			t.Errorf("Range after the replacement was detected: %v; want ErrStreamReplaced", err)
		}
		break
	}
	var types []string
	for _, e := range allEvents(t, other) {
		types = append(types, e.Type)
	}
	if len(types) != 1 || types[0] != "new1" {
		t.Errorf("the new stream holds %v, want [new1]", types)
	}
	// A fresh Log works on the new stream.
	if pos, err := other.Append(ctx, "s", 1, ev("new2")); err != nil || pos != (event.Position{Seq: 2, Version: 2, Time: pos.Time}) {
		t.Errorf("append through a fresh Log: %+v, %v", pos, err)
	}
}

// TestStreamReplacedHoldingMore: as TestStreamReplacedWhileOpen, but the
// new stream already holds as many events as the Log saw, or more, so its
// end does not go back. The event at the last seq the Log saw is another
// one (its Nats-Msg-Id differs): the Log must find the replacement when it
// reads the stream's end (LastSeq, Range, an append losing the race for
// the end), refuse the append with ErrStreamReplaced and write nothing.
// Before, it went unnoticed: the append landed on the new stream, and
// reads served it as if it were the log the Log had seen.
func TestStreamReplacedHoldingMore(t *testing.T) {
	for _, n := range []int{3, 5} { // the new stream's events; the Log saw 3
		t.Run(fmt.Sprintf("%d-events", n), func(t *testing.T) {
			s := startServer(t)
			ctx := t.Context()
			js := connect(t, s.ClientURL())
			l := openLog(t, js, evjs.Config{Replicas: 1})
			for _, typ := range []string{"old1", "old2", "old3"} {
				if _, err := l.Append(ctx, "s", evlog.ExpectAny, ev(typ)); err != nil {
					t.Fatal(err)
				}
			}
			if err := js.DeleteStream(ctx, l.StreamName()); err != nil {
				t.Fatal(err)
			}
			other := openLog(t, connect(t, s.ClientURL()), evjs.Config{Name: l.Name(), Replicas: 1})
			for i := range n {
				if _, err := other.Append(ctx, "s", evlog.ExpectAny, ev(fmt.Sprintf("new%d", i+1))); err != nil {
					t.Fatal(err)
				}
			}

			if n == 3 {
				// The new stream's end is where the Log's was: a read of
				// the end finds it.
				l.LastSeq()
			}
			_, err := l.Append(ctx, "s", evlog.ExpectAny, ev("mine"))
			if !errors.Is(err, evjs.ErrStreamReplaced) {
				t.Fatalf("append to a replaced stream holding %d events: %v; want ErrStreamReplaced", n, err)
			}
			if errors.Is(err, evjs.ErrUnknownOutcome) {
				t.Errorf("append refused before sending reported ErrUnknownOutcome: %v", err)
			}
			re, ok := errors.AsType[*evjs.StreamReplacedError](err)
			if !ok {
				t.Fatalf("%v is no *StreamReplacedError", err)
			}
			if want := (evjs.StreamReplacedError{Stream: l.StreamName(), Seen: 3, Last: uint64(n)}); *re != want {
				t.Errorf("StreamReplacedError %+v, want %+v", *re, want)
			}
			for _, err := range l.Range(ctx, 1, 10) {
				if !errors.Is(err, evjs.ErrStreamReplaced) {
					t.Errorf("Range after the replacement was detected: %v; want ErrStreamReplaced", err)
				}
				break
			}
			var types []string
			for _, e := range allEvents(t, other) {
				types = append(types, e.Type)
			}
			if len(types) != n || slices.Contains(types, "mine") {
				t.Errorf("the new stream holds %v, want only the %d events appended to it", types, n)
			}
		})
	}
}

// TestStreamReplacedSameEnd: the stream is replaced by one ending exactly
// at the last seq the Log saw, and the Log appends without reading the
// end first. The append's expectation on the log's last seq holds on the
// new stream, so before, the append landed there (as if it followed the
// events the Log had seen). The append path must check that the event at
// that seq is still the one the Log saw (by reading it, for free when an
// appended stream ends there): the append fails with ErrStreamReplaced
// and the new stream holds only its own events.
//
// Both ways the Log learns that it must read it are run: the advisory of
// the deletion reaching its watch ("advisories": the test waits for it,
// as the servers send it asynchronously), and a user who may not
// subscribe to advisories ("no-advisories": the watch is never trusted,
// every append reads).
func TestStreamReplacedSameEnd(t *testing.T) {
	tests := []struct {
		name      string
		newStream string // the stream of the new log's three events
		batch     []evlog.AppendRequest
	}{
		{"one-event", "s", []evlog.AppendRequest{{Stream: "s", Expect: evlog.ExpectAny, Events: []event.Envelope{ev("mine")}}}},
		{"one-event-other-stream", "x", []evlog.AppendRequest{{Stream: "s", Expect: evlog.ExpectAny, Events: []event.Envelope{ev("mine")}}}},
		// Not to the stream of the event at the last seq: read with the
		// head, concurrently.
		{"one-event-third-stream", "x", []evlog.AppendRequest{{Stream: "u", Expect: evlog.ExpectAny, Events: []event.Envelope{ev("mine")}}}},
		{"batch-head-at-end", "s", []evlog.AppendRequest{
			{Stream: "s", Expect: evlog.ExpectAny, Events: []event.Envelope{ev("mine1"), ev("mine2")}}}},
		{"batch-other-streams", "x", []evlog.AppendRequest{
			{Stream: "s", Expect: evlog.ExpectAny, Events: []event.Envelope{ev("mine1")}},
			{Stream: "t", Expect: evlog.ExpectAny, Events: []event.Envelope{ev("mine2")}}}},
	}
	for _, advisories := range []bool{true, false} {
		for _, tc := range tests {
			name := "advisories/" + tc.name
			if !advisories {
				name = "no-advisories/" + tc.name
			}
			t.Run(name, func(t *testing.T) {
				testStreamReplacedSameEnd(t, advisories, tc.newStream, tc.batch)
			})
		}
	}
}

func testStreamReplacedSameEnd(t *testing.T, advisories bool, newStream string, batch []evlog.AppendRequest) {
	var conn func() jetstream.JetStream
	if advisories {
		s := startServer(t)
		conn = func() jetstream.JetStream { return connect(t, s.ClientURL()) }
	} else {
		conn = startServerDenyingAdvisories(t)
	}
	ctx := guarded(t, hangGuard)
	js := conn()
	l := openLog(t, js, evjs.Config{Replicas: 1})
	for _, typ := range []string{"old1", "old2", "old3"} {
		if _, err := l.Append(ctx, "s", evlog.ExpectAny, ev(typ)); err != nil {
			t.Fatal(err)
		}
	}
	if err := js.DeleteStream(ctx, l.StreamName()); err != nil {
		t.Fatal(err)
	}
	other := openLog(t, conn(), evjs.Config{Name: l.Name(), Replicas: 1})
	for _, typ := range []string{"new1", "new2", "new3"} {
		if _, err := other.Append(ctx, newStream, evlog.ExpectAny, ev(typ)); err != nil {
			t.Fatal(err)
		}
	}

	if advisories {
		// The replacement's creation advisory (the second CREATED), not
		// the deletion's: nats-server v2.15.2 may lose the latter
		// (stream.stop queues it, then closes the loop that sends it).
		if ok, err := evjs.AwaitWatch(ctx, l, "CREATED", 2); !ok || err != nil {
			t.Fatalf("the Log did not receive the advisory of its stream's replacement: %v, %v", ok, err)
		}
	}

	_, err := l.AppendBatch(ctx, batch)
	if !errors.Is(err, evjs.ErrStreamReplaced) {
		t.Fatalf("append to a replaced stream ending at the Log's last seq: %v; want ErrStreamReplaced", err)
	}
	if errors.Is(err, evjs.ErrUnknownOutcome) {
		t.Errorf("append refused before it was stored reported ErrUnknownOutcome: %v", err)
	}
	re, ok := errors.AsType[*evjs.StreamReplacedError](err)
	if !ok {
		t.Fatalf("%v is no *StreamReplacedError", err)
	}
	if want := (evjs.StreamReplacedError{Stream: l.StreamName(), Seen: 3, Last: 3}); *re != want {
		t.Errorf("StreamReplacedError %+v, want %+v", *re, want)
	}
	var types []string
	for _, e := range allEvents(t, other) {
		types = append(types, e.Type)
	}
	if want := []string{"new1", "new2", "new3"}; !slices.Equal(types, want) {
		t.Errorf("the new stream holds %v, want %v", types, want)
	}

}

// TestServerRestartIsNoReplacement: a restart of the server keeping the
// stream (its files) is no replacement: the stream still holds the event
// the Log saw at its last seq, so the Log's next appends, a single event
// and a batch, succeed after the restart.
func TestServerRestartIsNoReplacement(t *testing.T) {
	dir := t.TempDir()
	opts := func(port int) *server.Options {
		return &server.Options{ServerName: "evlog-restart", Host: "127.0.0.1", Port: port,
			JetStream: true, StoreDir: dir, SyncAlways: true, NoLog: true, NoSigs: true}
	}
	start := func(port int) *server.Server {
		t.Helper()
		s, err := server.NewServer(opts(port))
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(hangGuard) {
			s.Shutdown()
			t.Fatalf("embedded nats-server (port %d) did not become ready", port)
		}
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		return s
	}
	s := start(-1)
	port := s.Addr().(*net.TCPAddr).Port
	ctx := guarded(t, hangGuard)
	js := connect(t, s.ClientURL())
	l := openLog(t, js, evjs.Config{Replicas: 1})
	for _, typ := range []string{"a1", "a2", "a3"} {
		if _, err := l.Append(ctx, "s", evlog.ExpectAny, ev(typ)); err != nil {
			t.Fatal(err)
		}
	}
	s.Shutdown()
	s.WaitForShutdown()
	start(port) // the client reconnects to the same address

	if pos, err := l.Append(ctx, "s", 3, ev("after1")); err != nil || pos.Seq != 4 {
		t.Fatalf("append after a restart: %+v, %v; want seq 4", pos, err)
	}
	pos, err := l.AppendBatch(ctx, []evlog.AppendRequest{
		{Stream: "t", Expect: evlog.ExpectAny, Events: []event.Envelope{ev("after2")}},
		{Stream: "s", Expect: 4, Events: []event.Envelope{ev("after3")}}})
	if err != nil || len(pos) != 2 || pos[1].Seq != 6 {
		t.Fatalf("batch after a restart: %+v, %v; want seqs 5, 6", pos, err)
	}
}
