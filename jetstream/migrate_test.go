package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
)

func fileLog(t *testing.T) *evlog.Log {
	t.Helper()
	l, err := evlog.Open(t.TempDir(), evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func readAll(t *testing.T, l evjs.CopySource) []event.Envelope {
	t.Helper()
	var out []event.Envelope
	for e, err := range l.Range(t.Context(), 1, l.LastSeq()) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestCopyRoundTrip copies a file log to JetStream, interrupted after its
// first batch and resumed, then back to a new file log: every field of
// every event survives both ways, and the checksums agree.
func TestCopyRoundTrip(t *testing.T) {
	ctx := t.Context()
	src := fileLog(t)
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 123, time.UTC)
	for i := range 2500 {
		e := event.Envelope{Type: fmt.Sprint("type-", i%3), SchemaVersion: uint32(1 + i%2),
			Time: t0.Add(time.Duration(i/7) * time.Second), Data: fmt.Appendf(nil, "payload %d", i)}
		if i%5 == 0 {
			e.ID = fmt.Sprint("id-", i)
		}
		if i%4 == 0 {
			e.Meta = map[string]string{"who": fmt.Sprint("user ", i%9), "trace": "a.b*c>"}
		}
		if _, err := src.Append(ctx, fmt.Sprintf("stream.%d ü", i%13), evlog.ExpectAny, e); err != nil {
			t.Fatal(err)
		}
	}
	s := startServer(t)
	js := connect(t, s.ClientURL())
	dst := openLog(t, js, evjs.Config{Replicas: 1})

	// A copy killed after its first batch...
	cctx, cancel := context.WithCancel(ctx)
	_, err := evjs.Copy(cctx, dst, src, func(uint64) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted copy: %v", err)
	}
	done := dst.LastSeq()
	if done == 0 || done >= src.LastSeq() {
		t.Fatalf("interrupted copy stopped at %d of %d", done, src.LastSeq())
	}
	// ...resumes where it stopped.
	rep, err := evjs.Copy(ctx, dst, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed != done || rep.Copied != src.LastSeq()-done || rep.Events != src.LastSeq() {
		t.Errorf("report %+v, want resumed at %d", rep, done)
	}
	back := fileLog(t)
	rep2, err := evjs.Copy(ctx, back, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.Checksum != rep.Checksum {
		t.Error("the checksums of the two copies differ")
	}
	want := readAll(t, src)
	opts := cmp.Options{cmpopts.EquateEmpty(), cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })}
	if d := cmp.Diff(want, readAll(t, dst), opts); d != "" {
		t.Errorf("file log -> JetStream (-want +got):\n%s", d)
	}
	if d := cmp.Diff(want, readAll(t, back), opts); d != "" {
		t.Errorf("JetStream -> file log (-want +got):\n%s", d)
	}
	// A target holding other events is refused, not appended to.
	other := fileLog(t)
	if _, err := other.Append(ctx, "x", evlog.ExpectAny, event.Envelope{Type: "e", Time: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := evjs.Copy(ctx, other, dst, nil); err == nil {
		t.Error("copy into a log holding other events succeeded")
	}
	if other.LastSeq() != 1 {
		t.Errorf("a refused copy appended: last seq %d", other.LastSeq())
	}
}

// TestCopyIDStoredTwice: a log may hold one event ID twice, stored again
// after its duplicate window (here a file log whose DedupeWindow is one
// event). Copy must copy it faithfully, IDs included: inside one batch
// (which an append refuses), and in a later batch, where the target's
// duplicate detection takes the repeat for a retry of the first (same
// content: it returns the first's positions and writes nothing) or for a
// reuse of its ID (other content: ErrDuplicateID). Copy used to stop,
// blaming another writer or the duplicate ID. A file-log target whose
// window covers both fails with ErrDuplicateID and writes nothing; with a
// small enough window it takes the copy.
func TestCopyIDStoredTwice(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	e := func(typ, id, data string) event.Envelope {
		return event.Envelope{Type: typ, ID: id, Time: t0, Data: []byte(data)}
	}
	src, err := evlog.Open(t.TempDir(), evlog.Options{DedupeWindow: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	for _, a := range []struct {
		stream string
		ev     event.Envelope
	}{
		{"a", e("t", "same-batch", "1")},
		{"a", e("t", "other", "2")},
		{"a", e("t", "same-batch", "1")}, // in the batch of its first
		{"a", e("t", "same-content", "3")},
		{"b", e("t", "filler", "4")},
		{"a", e("t", "same-content", "3")}, // a later batch, identical: a "retry"
		{"a", e("t", "other-content", "5")},
		{"b", e("t", "filler2", "6")},
		{"a", e("u", "other-content", "7")}, // a later batch, different
	} {
		if _, err := src.Append(ctx, a.stream, evlog.ExpectAny, a.ev); err != nil {
			t.Fatal(err)
		}
	}
	want := readAll(t, src)
	opts := cmp.Options{cmpopts.EquateEmpty(), cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })}

	s := startServer(t)
	dst := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1})
	rep, err := evjs.Copy(ctx, dst, src, nil)
	if err != nil {
		t.Fatalf("file log -> JetStream: %v", err)
	}
	if rep.Events != uint64(len(want)) {
		t.Errorf("report %+v, want %d events", rep, len(want))
	}
	if d := cmp.Diff(want, readAll(t, dst), opts); d != "" {
		t.Errorf("file log -> JetStream (-want +got):\n%s", d)
	}

	back, err := evlog.Open(t.TempDir(), evlog.Options{DedupeWindow: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { back.Close() })
	if _, err := evjs.Copy(ctx, back, dst, nil); err != nil {
		t.Fatalf("JetStream -> file log (DedupeWindow 1): %v", err)
	}
	if d := cmp.Diff(want, readAll(t, back), opts); d != "" {
		t.Errorf("JetStream -> file log (-want +got):\n%s", d)
	}

	whole := fileLog(t) // DedupeWindow 0: the whole log
	_, err = evjs.Copy(ctx, whole, dst, nil)
	if !errors.Is(err, evlog.ErrDuplicateID) {
		t.Fatalf("copy into a file log remembering every ID: %v; want ErrDuplicateID", err)
	}
	t.Logf("copy into a file log remembering every ID: %v", err)
	if n := whole.LastSeq(); n >= uint64(len(want)) {
		t.Errorf("refused copy holds %d events", n)
	}
}
