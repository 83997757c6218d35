package evlog

import (
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// TestBackupClaimsOnlyDurablyMarkedGroups: under SyncAlways a writer's
// Backup makes its marks durable, then reads the seq it backs up to. A
// group an appender commits between the two has its mark written but not
// fsynced: after a power loss a reader in another process does not serve
// it, so a manifest claiming it makes the next incremental backup beside
// the log refuse with a false ErrBackupDiverged. The backup stops at the
// last group whose mark is durable (the next backup takes the rest). It
// used to claim the new group.
func TestBackupClaimsOnlyDurablyMarkedGroups(t *testing.T) {
	fsys := vfs.NewMem()
	l := openMem(t, fsys, Options{Sync: SyncAlways, Clock: fakeClock(t0, 1)})
	defer l.Close()
	ctx := t.Context()
	if _, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "t"}, Envelope{Type: "t"}); err != nil {
		t.Fatal(err)
	}
	testBackupSynced = func(l *Log) {
		if _, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "t"}); err != nil {
			t.Error(err)
		}
	}
	defer func() { testBackupSynced = nil }()
	res, err := l.Backup(ctx, t.TempDir(), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// What a reader in another process serves after a power loss now.
	after := fsys.CrashClone(vfs.DropUnsynced, nil)
	r, err := openFS(vfs.ReadOnly(after), Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if served := r.LastSeq(); res.Seq > served {
		t.Errorf("the backup claims seq %d; after a power loss a read-only open serves up to %d only", res.Seq, served)
	}
	if res.Seq != 2 {
		t.Errorf("backup at seq %d, want 2 (the group before the one committed after the backup's sync)", res.Seq)
	}
}
