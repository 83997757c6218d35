package jetstream_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/examples/inventory"
	evjs "github.com/evlog/evlog/jetstream"
)

// TestInventoryTour runs the reference example's scenario on JetStream and
// expects exactly the output the file log's Example documents (read from
// examples/inventory/example_test.go, so the two cannot drift apart).
func TestInventoryTour(t *testing.T) {
	src, err := os.ReadFile("../examples/inventory/example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, out, ok := strings.Cut(string(src), "\t// Output:\n")
	if !ok {
		t.Fatal("no // Output: in the inventory Example")
	}
	var want []string
	for line := range strings.Lines(out) {
		text, ok := strings.CutPrefix(line, "\t//")
		if !ok {
			break
		}
		want = append(want, strings.TrimPrefix(strings.TrimRight(text, "\n"), " "))
	}

	if len(want) < 5 {
		t.Fatalf("parsed %d output lines from the Example", len(want))
	}
	s := startServer(t)
	js := connect(t, s.ClientURL())
	// The Example's clock: one hour per append, from 10:00.
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { now = now.Add(time.Hour); return now }
	l := openLog(t, js, evjs.Config{Replicas: 1, Clock: clock})
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := inventory.Tour(t.Context(), &buf, l, snaps); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("the tour on JetStream differs from the file log's Example (-want +got):\n%s", d)
	}
	// The repository took snapshots (SnapshotEvery 3) into the KV bucket.
	ms, err := snaps.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Error("no snapshot was taken on JetStream")
	}
}
