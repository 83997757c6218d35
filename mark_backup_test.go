package evlog

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// TestBackupNeedsTheSkippedMark: a backup's manifest is state the
// writer's process persists about the log, like a snapshot or a
// subscription position: it must not claim a seq that a reader in another
// process does not serve. Under SyncAlways, after a mark skipped for lack
// of space, the writer's Backup synced (Sync, which writes the mark again
// but does not fail when it still cannot) and recorded the unmarked
// group's seq in the manifest; an incremental backup taken beside the
// writer (evlogctl backup, read-only) then refused with ErrBackupDiverged,
// "the log lost events the backup holds", though nothing was lost. The
// writer's Backup must fail (matching syscall.ENOSPC) while the mark
// cannot be written, and succeed once it can.
func TestBackupNeedsTheSkippedMark(t *testing.T) {
	mem := vfs.NewMem()
	var full atomic.Bool
	fsys := vfs.NewFaulty(mem, func(op vfs.Op) error {
		if full.Load() && isSegmentWrite(op) && op.Len == segment.MarkFrameSize {
			return vfs.ENOSPC(op.Name)
		}
		return nil
	})
	opts := Options{Sync: SyncAlways}
	l := openMem(t, fsys, opts)
	defer l.Close()
	appendN(t, l, "s", 2)
	full.Store(true)
	appendN(t, l, "s", 1) // its group is durable, its mark skipped
	n := l.LastSeq()
	b := vfs.NewMem()
	_, err := l.backupFS(t.Context(), b, "backup", BackupOptions{})
	if !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrWriterFailed) {
		t.Fatalf("Backup with no space for the mark: %v; want an ENOSPC error", err)
	}
	if _, err := readManifest(b, "backup"); err == nil {
		t.Fatal("the failed Backup left a manifest")
	}
	full.Store(false)
	res, err := l.backupFS(t.Context(), b, "backup", BackupOptions{})
	if err != nil {
		t.Fatalf("Backup once space is freed: %v", err)
	}
	if res.Seq != n {
		t.Errorf("Backup once space is freed: seq %d, want %d", res.Seq, n)
	}
	ro, err := openFS(vfs.ReadOnly(mem.Clone()), opts, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.backupFS(t.Context(), b, "backup", BackupOptions{Incremental: true}); err != nil {
		t.Errorf("an incremental backup beside the writer: %v", err)
	}
}
