package evlog

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/snapshot"
)

// checkBackupSnapshot is the one judgement of a backup's snapshot that
// Restore and VerifyBackup share, so that what VerifyBackup reports is what
// Restore does. The snapshot is name, listed in the manifest m of the
// backup backup, whose bytes checkBackupFiles has already found to be the
// ones the manifest lists (a snapshot missing, truncated, or whose bytes
// do not match the manifest — damaged in the backup — refuses the whole
// backup there: ErrBackupCorrupt). store reads the backup's view with the
// restore's size bound. It verifies the snapshot fully (checksums,
// decompression within the bound, its header agreeing with its name) and
// that it belongs to the manifest's log, and returns:
//
//   - "", nil: the snapshot is sound; a restore copies it.
//   - a reason, nil: the backup holds the snapshot as the log held it, and
//     it cannot be used: over the size bound, corrupt (damaged before the
//     backup was taken, which copied it faithfully), or not a snapshot of
//     these events. Snapshots are derived from the events, so a restore
//     leaves it out, names it with the reason, and restores the rest;
//     VerifyBackup reports it as such, not as damage.
//   - an error (a *BackupError matching ErrBackupCorrupt): it could not
//     be read.
func checkBackupSnapshot(ctx context.Context, store *snapshot.Store, backup string, m *Manifest, name string) (leaveOut string, err error) {
	sm, err := store.Verify(ctx, name)
	ce, corrupt := errors.AsType[*snapshot.CorruptError](err)
	switch {
	case err == nil && hex.EncodeToString(sm.LogID[:]) != m.LogID:
		return fmt.Sprintf("not a snapshot of these events: it belongs to log %x, the backup is of log %s; replay folds the events it would cover without it", sm.LogID[:], m.LogID), nil
	case err == nil:
		return "", nil
	case errors.Is(err, snapshot.ErrTooLarge):
		why := err.Error()
		if corrupt {
			why = ce.Reason
		}
		return fmt.Sprintf("over the snapshot size bound: %s (raise RestoreOptions.MaxSnapshotSize, evlogctl restore --max-snapshot-size, to the log's Options.Snapshot.MaxRawSize to keep it; replay folds the events it covered again without it)", why), nil
	case corrupt:
		why := ce.Reason
		if ce.Err != nil {
			why += ": " + ce.Err.Error()
		}
		return fmt.Sprintf("corrupt: %s at offset %d: %s (it was so when the backup was taken: its bytes are the ones the manifest lists; replay folds the events it covered again without it)", ce.File, ce.Offset, why), nil
	default:
		return "", &BackupError{Dir: backup, File: name, Reason: err.Error(), Err: errors.Join(ErrBackupCorrupt, err)}
	}
}

// errBackupChanged fails a read of a backup that found a snapshot
// unusable while a pass beside it replaced the manifest (see
// leftOutBeside); besidePass reads the backup again.
var errBackupChanged = errors.New("evlog: the backup changed while it was read (a backup pass ran beside it): run again")

// leftOutBeside returns errBackupChanged when a read of the backup in
// fsys, which began when the manifest's first line was head, left out
// snapshots (leftOut) and the manifest has changed since: a pass may have
// replaced a snapshot under its name, which the read then took through
// the old manifest's size, and it must not be reported as unusable (as
// "its bytes are the ones the manifest lists") on that word. A read that
// left nothing out stands: every file it kept was read whole and checked.
func leftOutBeside(fsys vfs.FS, head string, leftOut int) error {
	if leftOut > 0 && manifestHead(fsys) != head {
		return errBackupChanged
	}
	return nil
}
