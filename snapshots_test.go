package evlog

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/snapshot"
)

// blockRename returns a Faulty over fsys whose first rename of a snapshot
// temporary waits: reached is closed when it starts, and it proceeds once
// release is closed.
func blockRename(fsys vfs.FS) (f *vfs.Faulty, reached, release chan struct{}) {
	reached, release = make(chan struct{}), make(chan struct{})
	first := true
	f = vfs.NewFaulty(fsys, func(op vfs.Op) error {
		if op.Kind == vfs.OpRename && strings.HasSuffix(op.Name, ".snap.tmp") && first {
			first = false
			close(reached)
			<-release
		}
		return nil
	})
	return f, reached, release
}

// TestSnapshotToolsKeepWritersTemporaries: a SnapshotWriter (what
// `evlogctl snapshot` and `snapshots --prune` open beside a running
// writer) never removes the writer's snapshot temporaries, so a
// Save in progress in the writer completes.
func TestSnapshotToolsKeepWritersTemporaries(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := runWorkload(ctx, l, genWorkload(1, 5)); err != nil {
		t.Fatal(err)
	}
	osfs, err := vfs.OpenOS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer osfs.Close()
	// The writer's store, with its Save stopped between writing the
	// temporary and renaming it.
	wfs, reached, release := blockRename(osfs)
	store, err := snapshot.Open(wfs, snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := store.Save(context.Background(), snapshot.Meta{Name: "s", Seq: 1, Time: t0}, []byte("state"))
		done <- err
	}()
	<-reached
	sw, err := OpenSnapshotWriter(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Log().Snapshots(); err != nil {
		t.Fatal(err)
	}
	sw.Close()
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the writer's Save failed: %v", err)
	}
}

// TestCleanTempsKeepsSavesInProgress: the writer's clean-up of leftover
// temporaries removes only abandoned ones, never the temporary of a Save in
// progress in another process (a reader allowed to write snapshots).
func TestCleanTempsKeepsSavesInProgress(t *testing.T) {
	mem := vfs.NewMem()
	abandoned := snapshot.FormatFileName("old", 3) + ".tmp"
	mem.WriteFile(abandoned, []byte("left by a crash"))
	rfs, reached, release := blockRename(mem)
	other, err := snapshot.Open(rfs, snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := other.Save(context.Background(), snapshot.Meta{Name: "s", Seq: 1, Time: t0}, []byte("state"))
		done <- err
	}()
	<-reached
	writer, err := snapshot.Open(mem, snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := writer.CleanTemps(); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the Save in progress failed: %v", err)
	}
	if _, err := mem.Stat(abandoned); err == nil {
		t.Errorf("the abandoned temporary %s is still there", abandoned)
	}
}

// TestSnapshotWriterContract: a SnapshotWriter saves and prunes snapshots
// beside a running writer, while the read-only log it holds never writes
// (its own store refuses), and a snapshot beyond the events the log serves
// fails.
func TestSnapshotWriterContract(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	l, err := Open(dir, Options{Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := runWorkload(ctx, l, genWorkload(1, 5)); err != nil {
		t.Fatal(err)
	}
	sw, err := OpenSnapshotWriter(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	last := sw.Log().LastSeq()
	if last == 0 {
		t.Fatal("the SnapshotWriter's log serves no events")
	}
	ro, err := sw.Log().Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Save(ctx, snapshot.Meta{Name: "s", Seq: last, Time: t0}, []byte("state")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Save through the read-only log's store = %v, want ErrReadOnly", err)
	}
	store := sw.Snapshots()
	if _, err := store.Save(ctx, snapshot.Meta{Name: "s", Seq: last + 1, Time: t0}, []byte("state")); err == nil {
		t.Fatal("a snapshot beyond the end of the log was saved")
	}
	m, err := store.Save(ctx, snapshot.Meta{Name: "s", Seq: last, Time: t0}, []byte("state"))
	if err != nil {
		t.Fatal(err)
	}
	ws, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	metas, err := ws.List("s")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(metas, func(x snapshot.Meta) bool { return x.File == m.File }) {
		t.Fatalf("the writer's store lists %v, not the SnapshotWriter's %s", metas, m.File)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
