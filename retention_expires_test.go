package evlog

import (
	"errors"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// TestExpiresEvents: ExpiresEvents says whether the log records retention
// as visible now, in the writer and in a reader (after Refresh), and the
// safe side (true, with the error) when it cannot tell.
func TestExpiresEvents(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	check := func(when string, l *Log, want bool) {
		t.Helper()
		got, err := l.ExpiresEvents(ctx)
		if err != nil || got != want {
			t.Errorf("%s: ExpiresEvents = %v, %v; want %v, nil", when, got, err, want)
		}
	}
	w := openMem(t, mem, Options{})
	appendRet(t, w, "r-1", 1, 2)
	check("no retention recorded", w, false)
	r := openReader(t, mem, Options{})
	check("reader, no retention recorded", r, false)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	w = openMem(t, mem, Options{Retention: map[string]Retention{"r": {MaxCount: 5}}})
	check("retention recorded (nothing expired yet)", w, true)
	check("reader, before Refresh", r, false)
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	check("reader, after Refresh", r, true)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	w = openMem(t, mem, Options{Retention: map[string]Retention{}})
	check("no retention recorded again", w, false)

	// A record of a kind this version does not interpret.
	batch := []AppendRequest{{Stream: RetentionStream, Expect: ExpectAny, Events: []Envelope{{Type: "$retention-v9", Data: []byte{0x80}}}}}
	size, n, ids, err := w.checkBatch(batch)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.w.submit(ctx, &request{batch: batch, size: size, events: n, noIDs: !ids, done: make(chan struct{})}); err != nil {
		t.Fatal(err)
	}
	got, err := w.ExpiresEvents(ctx)
	if !got || !errors.Is(err, ErrRetentionUnknown) {
		t.Errorf("unknown retention record: ExpiresEvents = %v, %v; want true, ErrRetentionUnknown", got, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
