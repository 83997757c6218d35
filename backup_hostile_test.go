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
