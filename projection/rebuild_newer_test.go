package projection_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/snapshot"
)

// TestRebuildKeepsANewerFormatCheckpoint: Rebuild removes every checkpoint
// of its projection, but not one in a snapshot format newer than this
// build reads (a newer evlog's, after a binary was rolled back): it stops
// with an error matching snapshot.ErrNewerFormat and leaves the file for
// the newer evlog (docs/SNAPSHOT_FORMAT.md).
func TestRebuildKeepsANewerFormatCheckpoint(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	defer l.Close()
	appendN(t, l, "a", 4)
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	raw := func(e event.Envelope) (event.Envelope, error) { return e, nil }
	runUntilCaughtUp(t, projection.NewRunner(typesCount, l, snaps, raw, projection.RunnerOptions{}), 4, false)
	list, err := snaps.List("")
	if err != nil || len(list) == 0 {
		t.Fatalf("checkpoints: %v, %v", list, err)
	}
	path := filepath.Join(dir, list[0].File)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[8] = 0xff // the format version (little-endian u16 at offset 8): one this build does not read
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r := projection.NewRunner(typesCount, l, snaps, raw, projection.RunnerOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Rebuild(ctx) }()
	// Until Rebuild fails, or has rebuilt the view (then it follows
	// appends until cancelled).
	_ = projection.WaitGuarded(t, r, 4, "the rebuilt view, or the Rebuild's failure")
	cancel()
	if err := <-done; !errors.Is(err, snapshot.ErrNewerFormat) {
		t.Fatalf("Rebuild over a checkpoint of a newer format: %v, want an error matching snapshot.ErrNewerFormat", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the checkpoint of a newer format was removed: %v", err)
	}
}
