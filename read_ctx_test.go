package evlog

import (
	"context"
	"errors"
	"iter"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// TestReadsWithCancelledContext: a read given an already-cancelled
// context yields its error before any event (Events and Range used to
// yield up to 256 events before noticing).
func TestReadsWithCancelledContext(t *testing.T) {
	l := openMem(t, vfs.NewMem(), Options{})
	defer l.Close()
	for range 10 {
		if _, err := l.Append(t.Context(), "s", ExpectAny, Envelope{Type: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for name, seq := range map[string]iter.Seq2[Envelope, error]{
		"Events":    l.Events(ctx, 1),
		"Range":     l.Range(ctx, 1, 10),
		"Stream":    l.Stream(ctx, "s", 1),
		"Subscribe": l.Subscribe(ctx, 1),
	} {
		events := 0
		var got error
		for _, err := range seq {
			if err != nil {
				got = err
				break
			}
			events++
		}
		if events != 0 || !errors.Is(got, context.Canceled) {
			t.Errorf("%s: %d events, then %v; want context.Canceled before any event", name, events, got)
		}
	}
}
