package jetstream_test

import (
	"errors"
	"testing"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
)

// TestClosedLogRefuses: as on the file log, a closed Log refuses appends
// and new reads with evlog.ErrClosed, and a running subscription ends with
// it; the stream and the connection stay (they are shared).
func TestClosedLogRefuses(t *testing.T) {
	s := startServer(t)
	js := connect(t, s.ClientURL())
	l := openLog(t, js, evjs.Config{Replicas: 1})
	ctx := t.Context()
	if _, err := l.Append(ctx, "s", evlog.ExpectAny, ev("e")); err != nil {
		t.Fatal(err)
	}
	subErr := make(chan error, 1)
	// Buffered: the first event's signal is kept for the receive below
	// whenever it comes. Unbuffered, it was dropped when the event came
	// before this goroutine waited for it (a thread descheduled on a
	// loaded machine), and the test hung: one event, never another.
	got := make(chan struct{}, 1)
	go func() {
		for _, err := range l.Subscribe(ctx, 1) {
			if err != nil {
				subErr <- err
				return
			}
			select {
			case got <- struct{}{}:
			default:
			}
		}
		subErr <- nil
	}()
	select { // the subscription runs
	case <-got:
	case err := <-subErr:
		t.Fatalf("the subscription ended before its first event: %v", err)
	case <-time.After(hangGuard): // only turns a hang into a failure
		t.Fatal("the subscription yielded no event")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case err := <-subErr:
		if !errors.Is(err, evlog.ErrClosed) {
			t.Errorf("running subscription ended with %v, want ErrClosed", err)
		}
	case <-time.After(hangGuard): // only turns a hang into a failure
		t.Errorf("the running subscription did not end when the Log was closed")
	}
	if _, err := l.Append(ctx, "s", evlog.ExpectAny, ev("e")); !errors.Is(err, evlog.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := l.AppendBatch(ctx, []evlog.AppendRequest{{Stream: "s", Expect: evlog.ExpectAny, Events: []event.Envelope{ev("e")}}}); !errors.Is(err, evlog.ErrClosed) {
		t.Errorf("AppendBatch after Close = %v, want ErrClosed", err)
	}
	for name, seq := range map[string]func(yield func(event.Envelope, error) bool){
		"Range": l.Range(ctx, 1, 10), "Stream": l.Stream(ctx, "s", 1), "Subscribe": l.Subscribe(ctx, 1),
	} {
		var last error
		for _, err := range seq {
			last = err
			if err != nil {
				break
			}
		}
		if !errors.Is(last, evlog.ErrClosed) {
			t.Errorf("%s after Close ended with %v, want ErrClosed", name, last)
		}
	}
	if _, err := l.SeqAt(ctx, time.Now()); !errors.Is(err, evlog.ErrClosed) {
		t.Errorf("SeqAt after Close = %v, want ErrClosed", err)
	}
	// Another Log on the same stream is unaffected.
	other := openLog(t, js, evjs.Config{Name: l.Name(), Replicas: 1})
	if _, err := other.Append(ctx, "s", evlog.ExpectAny, ev("e")); err != nil {
		t.Errorf("another Log after Close: %v", err)
	}
}
