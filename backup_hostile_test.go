package evlog

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// TestIncrementalRefusesALogThatLostEvents: a read-only backup beside a
// SyncNever writer holds committed batches that a power loss of the source
// may take (docs/BACKUP.md). When it does, and the restarted writer
// appends other events at those seqs, the log no longer continues the
// backup: an incremental pass must refuse it (ErrBackupDiverged) and leave
// the backup as it was — the only copy of those events — not replace it
// with the shorter, different log.
func TestIncrementalRefusesALogThatLostEvents(t *testing.T) {
	ctx := t.Context()
	for _, again := range []int{1, 5} { // fewer events appended again than lost, and more
		mem := vfs.NewMem()
		w := openMem(t, mem, Options{Sync: SyncNever})
		appendN(t, w, "a", 6)
		ro, err := openFS(vfs.ReadOnly(mem), Options{}, true)
		if err != nil {
			t.Fatal(err)
		}
		b := vfs.NewMem()
		res, err := ro.backupFS(ctx, b, "backup", BackupOptions{})
		ro.Close()
		if err != nil || res.Seq != 6 {
			t.Fatalf("backup: seq %d, %v; want 6", res.Seq, err)
		}
		before := snapshotFiles(t, b)

		lost := mem.CrashClone(vfs.DropUnsynced, nil) // the writer's batches were never fsynced
		w2 := openMem(t, lost, Options{Sync: SyncNever})
		appendN(t, w2, "other", again)
		if err := w2.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		res, err = w2.backupFS(ctx, b, "backup", BackupOptions{Incremental: true})
		w2.Close()
		if !errors.Is(err, ErrBackupDiverged) {
			t.Errorf("again=%d: incremental pass over a log that lost the backup's events: seq %d, %v; want ErrBackupDiverged", again, res.Seq, err)
		}
		if d := cmp.Diff(before, snapshotFiles(t, b)); d != "" {
			t.Errorf("again=%d: the backup changed:\n%s", again, d)
		}
	}
}

// TestRestoreRefusesADirectoryInUse: Restore checks that its target is
// empty, then reads and checks the whole backup (minutes, for a large
// one) before it writes. A writer that opens the directory meanwhile, or
// a second restore into it, must make the restore fail, never have its
// files removed and overwritten: the restore takes the directory's LOCK
// and checks it again under it.
func TestRestoreRefusesADirectoryInUse(t *testing.T) {
	cs := newCrashSource(t)
	restore := memRestore(t, cs)
	dst := vfs.NewMem()
	w := openMem(t, dst, Options{})
	defer w.Close()
	appendN(t, w, "mine", 5)
	want := readAll(t, w)
	before := snapshotFiles(t, dst)
	err := restore(dst)
	if err == nil {
		t.Error("a restore into a directory a writer holds succeeded")
	}
	delete(before, LockFile)
	after := snapshotFiles(t, dst)
	delete(after, LockFile)
	if d := cmp.Diff(before, after); d != "" {
		t.Errorf("the restore (%v) changed the writer's directory:\n%s", err, d)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := openFS(vfs.ReadOnly(dst), Options{}, true)
	if err != nil {
		t.Fatalf("reopening the writer's log: %v", err)
	}
	defer r.Close()
	if d := cmp.Diff(want, readAll(t, r), envCmp...); d != "" {
		t.Errorf("the writer's log changed (-before +after):\n%s", d)
	}
}
