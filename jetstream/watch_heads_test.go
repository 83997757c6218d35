package jetstream_test

import (
	"errors"
	"testing"

	"github.com/evlog/evlog"
	evjs "github.com/evlog/evlog/jetstream"
)

// TestStreamReplacedDuringHeadsRead: the stream is replaced by one ending
// at the Log's last seq while an append reads its heads, and the
// advisories of the replacement arrive before the append decides. The heads
// it read (the old stream's, the event at the last seq among them) prove
// nothing then: the append reads the end again and finds the replacement
// (ErrStreamReplaced, nothing written). Deterministic: the replacement
// is made, and its advisory awaited, inside the append (SetAfterHeadsRead).
func TestStreamReplacedDuringHeadsRead(t *testing.T) {
	s := startServer(t)
	ctx := guarded(t, hangGuard)
	js := connect(t, s.ClientURL())
	l := openLog(t, js, evjs.Config{Replicas: 1})
	if ok, err := evjs.AwaitWatch(ctx, l, "CREATED", 1); !ok || err != nil {
		t.Fatalf("the Log does not watch its stream's advisories: %v, %v", ok, err)
	}
	for _, typ := range []string{"old1", "old2", "old3"} {
		if _, err := l.Append(ctx, "s", evlog.ExpectAny, ev(typ)); err != nil {
			t.Fatal(err)
		}
	}
	replaced := false
	evjs.SetAfterHeadsRead(t, func() {
		if replaced {
			return
		}
		replaced = true
		if err := js.DeleteStream(ctx, l.StreamName()); err != nil {
			t.Error(err)
			return
		}
		other := openLog(t, connect(t, s.ClientURL()), evjs.Config{Name: l.Name(), Replicas: 1})
		for _, typ := range []string{"new1", "new2", "new3"} {
			if _, err := other.Append(ctx, "s", evlog.ExpectAny, ev(typ)); err != nil {
				t.Error(err)
				return
			}
		}
		// The replacement's creation advisory: the deletion's may be lost
		// (see testStreamReplacedSameEnd).
		if _, err := evjs.AwaitWatch(ctx, l, "CREATED", 2); err != nil {
			t.Errorf("the Log did not receive the advisory of its stream's replacement: %v", err)
		}
	})
	_, err := l.Append(ctx, "s", evlog.ExpectAny, ev("mine"))
	if !replaced {
		t.Fatal("the hook did not run: the test does not test what it says")
	}
	if !errors.Is(err, evjs.ErrStreamReplaced) {
		t.Fatalf("append whose heads were read before its stream was replaced by one ending at the Log's last seq (the advisory arrived before it decided): %v; want ErrStreamReplaced", err)
	}
}
