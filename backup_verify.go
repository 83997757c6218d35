package evlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/snapshot"
)

// BackupReport is what VerifyBackup found.
type BackupReport struct {
	Dir      string
	Manifest *Manifest
	// Verify is the verification of the backup's segments, every record
	// and index, as Verify does for a log directory.
	Verify VerifyReport
	// Snapshots is the number of snapshots that verify: those a restore
	// copies.
	Snapshots int
	// SnapshotsLeftOut lists the snapshots that a restore to the end of
	// the backup (with the same size bound) leaves out, exactly as its
	// RestorePlan.SnapshotsLeftOut lists them, each with its Reason:
	// snapshots the backup holds as the log held them (their bytes match
	// the manifest) that cannot be used — over the size bound, corrupt
	// (damaged before the backup was taken), another log's. They are not
	// damage of the backup, which VerifyBackup passes: its events restore
	// whole, and replay folds the events those snapshots covered again.
	SnapshotsLeftOut []RestoreFile
}

// VerifyBackup checks the backup in dir without a writer and without
// changing anything: the manifest and its checksum, every listed file's
// size and SHA-256, every frame, record and index of the segments (as
// Verify does), that they belong to the manifest's log and end at its seq,
// and every snapshot (checksums, decompression bounded by
// snapshot.DefaultMaxRawSize as Restore bounds it by default, log ID: see
// VerifyBackupWith to raise the bound). A backup that
// fails any check is reported with an error matching ErrNotABackup or
// ErrBackupCorrupt (a *BackupError naming the file and the reason); the
// segment findings are also in the report. A snapshot is judged as
// Restore judges it: one that a restore leaves out (its bytes match the
// manifest, but it is over the bound, corrupt, or another log's) is not
// an error but listed in BackupReport.SnapshotsLeftOut with the reason;
// one missing or whose bytes do not match the manifest is damage
// (ErrBackupCorrupt), which Restore refuses too.
func VerifyBackup(ctx context.Context, dir string) (BackupReport, error) {
	return VerifyBackupWith(ctx, dir, VerifyBackupOptions{})
}

// VerifyBackupOptions configures VerifyBackupWith.
type VerifyBackupOptions struct {
	// MaxSnapshotSize bounds the decompressed size of a snapshot in the
	// backup (0: snapshot.DefaultMaxRawSize); a larger one is listed in
	// BackupReport.SnapshotsLeftOut, as Restore leaves it out. It is the
	// bound Restore applies (RestoreOptions.MaxSnapshotSize): give both
	// the Options.Snapshot.MaxRawSize of the log.
	MaxSnapshotSize int64
}

// VerifyBackupWith is VerifyBackup with options.
func VerifyBackupWith(ctx context.Context, dir string, opts VerifyBackupOptions) (BackupReport, error) {
	rep := BackupReport{Dir: dir}
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		return rep, fmt.Errorf("evlog: opening backup %s: %w", dir, err)
	}
	defer fsys.Close()
	ro := vfs.ReadOnly(fsys)
	return besidePass(ro, func() (BackupReport, error) { return verifyBackupFS(ctx, ro, dir, opts) })
}

func verifyBackupFS(ctx context.Context, fsys vfs.FS, dir string, opts VerifyBackupOptions) (BackupReport, error) {
	rep := BackupReport{Dir: dir}
	head := manifestHead(fsys)
	m, err := readManifest(fsys, dir)
	if err != nil {
		return rep, err
	}
	rep.Manifest = m
	if err := checkBackupFiles(ctx, fsys, dir, m); err != nil {
		return rep, err
	}
	view := newBackupView(fsys, m)
	if rep.Verify, err = verifyFS(ctx, view); err != nil {
		return rep, err
	}
	// A backup's newest segment ends exactly after S's batch: a torn
	// tail there is damage too.
	for _, f := range rep.Verify.Findings {
		return rep, &BackupError{Dir: dir, File: f.File, Reason: f.String(), Err: ErrBackupCorrupt}
	}
	bl, err := openFS(view, Options{}, true)
	if err != nil {
		return rep, &BackupError{Dir: dir, Reason: err.Error(), Err: errors.Join(ErrBackupCorrupt, err)}
	}
	defer bl.Close()
	if err := checkBackupLog(bl, dir, m); err != nil {
		return rep, err
	}
	store, err := snapshot.Open(view, snapshot.Options{MaxRawSize: opts.MaxSnapshotSize})
	if err != nil {
		return rep, err
	}
	for _, f := range m.Files {
		if f.Kind != kindSnapshot {
			continue
		}
		why, err := checkBackupSnapshot(ctx, store, dir, m, f.Name)
		if err != nil {
			return rep, err
		}
		if why != "" {
			// What a restore does with it (prepareRestore): leave it out.
			rep.SnapshotsLeftOut = append(rep.SnapshotsLeftOut, RestoreFile{Name: f.Name, Kind: kindSnapshot,
				Action: actionLeave, Size: f.Size, Seq: f.Seq, Reason: why})
			continue
		}
		rep.Snapshots++
	}
	if err := leftOutBeside(fsys, head, len(rep.SnapshotsLeftOut)); err != nil {
		return rep, err
	}
	return rep, nil
}
