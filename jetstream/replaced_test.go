package jetstream_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

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
