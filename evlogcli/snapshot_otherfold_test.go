package evlogcli

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/snapshot"
)

// TestSnapshotFoldKeepsOtherFoldCheckpoint: a checkpoint of another fold
// of a projection (another schema version) at the last seq takes the file
// name snapshot --fold would write. projection.Runner replaces such a
// checkpoint on a log whose events cannot expire (no retention recorded);
// evlogctl does not (see
// docs/CLI.md, "snapshot"): it fails naming the file, status 1, and the
// other fold's checkpoint is left as it was.
func TestSnapshotFoldKeepsOtherFoldCheckpoint(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	writeTestApp(t, dir)
	l, err := evlog.Open(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	last := l.LastSeq()
	cps, err := store.List("projection/deposits")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cps {
		if c.Seq == last {
			if err := store.Remove(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	other, err := store.Save(ctx, snapshot.Meta{Name: "projection/deposits", LogID: l.LogID(), Seq: last, Time: testEventTime(len(testHistory) - 1), SchemaVersion: testDeposits.SchemaVersion + 1}, []byte{0x80})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, err := runCLI(t, testFolds(), "snapshot", dir, "--fold", "deposits")
	if pe, ok := errors.AsType[*passedOverError](err); !ok || exitCode(err) != 1 || pe.File != other.File {
		t.Fatalf("snapshot: %v (status %d), want a *passedOverError naming %s, status 1\n%s%s", err, exitCode(err), other.File, stdout, stderr)
	}
	l, err = evlog.Open(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	store, err = l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.List("projection/deposits")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || !cmp.Equal(other, got[len(got)-1]) {
		t.Errorf("checkpoints after snapshot --fold: %v; want the other fold's at seq %d kept", got, last)
	}
}
