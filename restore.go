package evlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

// RestoreMarker is the file a restore writes first into the directory it
// restores into and removes last. Open, OpenReadOnly and Verify refuse a
// directory holding it (ErrRestoreIncomplete): a restore killed midway
// leaves a directory that must not be taken for a log.
const RestoreMarker = "RESTORING"

// ErrRestoreIncomplete is matched by the error of Open, OpenReadOnly and
// Verify on a directory where a restore was interrupted.
var ErrRestoreIncomplete = errors.New("evlog: an interrupted restore")

// SalvageMarker is the file evlogctl salvage writes into the new log's
// directory before it copies the first event and removes once every event
// it copies is durable. Open, OpenReadOnly and Verify refuse a directory
// holding it (ErrSalvageIncomplete): a salvage interrupted midway leaves a
// partial copy that must not be taken for the salvaged log.
const SalvageMarker = "SALVAGING"

// ErrSalvageIncomplete is matched by the error of Open, OpenReadOnly and
// Verify on a directory where evlogctl salvage was interrupted.
var ErrSalvageIncomplete = errors.New("evlog: an interrupted salvage")

// restoreMarked fails with ErrRestoreIncomplete when names, a listing of
// a directory, hold RestoreMarker or its temporary (a restore killed while
// writing the marker), and with ErrSalvageIncomplete when they hold
// SalvageMarker or its temporary. A reader must check the listing it
// reads the log from, not only one taken before: a restore writes the
// marker first and removes it last, so a listing that shows its files
// before it is complete shows the marker too, while an earlier listing
// may show neither.
func restoreMarked(names []string) error {
	for _, n := range names {
		switch n {
		case RestoreMarker, RestoreMarker + ".tmp":
			return fmt.Errorf("%w: the directory holds %s: a restore into it did not finish; run the restore again (it starts over), or remove the directory", ErrRestoreIncomplete, n)
		case SalvageMarker, SalvageMarker + ".tmp":
			return fmt.Errorf("%w: the directory holds %s: evlogctl salvage into it did not finish, and it holds only part of what the salvage copies; run the salvage again (it starts over), or remove the directory", ErrSalvageIncomplete, n)
		}
	}
	return nil
}

// RestoreOptions configures Restore.
type RestoreOptions struct {
	// ToSeq, when not 0, ends the restored log at the last batch boundary
	// at or before this seq. ToTime, when not zero, ends it at the last
	// batch boundary at or before the last event recorded at or before
	// ToTime. With both, the earlier point wins; with neither, the log
	// ends where the backup does. A batch is never split.
	ToSeq  uint64
	ToTime time.Time
	// DryRun checks the backup as a restore would (every frame of the
	// files it would write too), and that dir is one a restore accepts,
	// and returns the plan without writing anything.
	DryRun bool
	// Perm is the permission of the files created (0: DefaultPerm).
	Perm fs.FileMode
	// MaxSnapshotSize bounds the decompressed size of a snapshot in the
	// backup (0: snapshot.DefaultMaxRawSize); a larger one is left out
	// (RestorePlan.SnapshotsLeftOut). Set it to the
	// Options.Snapshot.MaxRawSize of the log.
	MaxSnapshotSize int64
}

// RestorePlan is what a restore does (or, in a dry run, would do).
type RestorePlan struct {
	Backup string `json:"backup"`
	Dir    string `json:"dir"`
	// LogID is the backed-up log's ID; NewLogID the restored log's (empty
	// in a dry run): a restored log starts a new timeline.
	LogID    string `json:"log_id"`
	NewLogID string `json:"new_log_id,omitempty"`
	// BackupSeq and BackupTime are where the backup ends (S); EndSeq and
	// EndTime where the restored log ends.
	BackupSeq  uint64    `json:"backup_seq"`
	BackupTime time.Time `json:"backup_time"`
	EndSeq     uint64    `json:"end_seq"`
	EndTime    time.Time `json:"end_time"`
	// Target describes what was asked ("the end of the backup", "seq N",
	// "time T").
	Target string `json:"target"`
	// CutEvents is the number of the backup's events left out (after
	// EndSeq).
	CutEvents uint64        `json:"cut_events"`
	Files     []RestoreFile `json:"files"`
}

// RestoreFile is one file of a backup and what the restore does with it.
type RestoreFile struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // "segment" or "snapshot"
	// Action: "copy" (whole), "cut" (a segment cut after EndSeq's batch:
	// the restored log's newest segment), or "leave out" (after EndSeq).
	Action   string `json:"action"`
	Size     int64  `json:"size"` // in the backup
	FirstSeq uint64 `json:"first_seq,omitempty"`
	LastSeq  uint64 `json:"last_seq,omitempty"` // segments: the last seq restored
	Seq      uint64 `json:"seq,omitempty"`      // snapshots
	// Reason says why a file the restore would otherwise copy is left
	// out: a snapshot within the restored range that the backup holds as
	// the log held it (its bytes match the manifest) but that cannot be
	// used: over RestoreOptions.MaxSnapshotSize, corrupt (it names the
	// file and offset and what is wrong), or not a snapshot of these
	// events (another log's). Empty for files left out because they lie
	// after EndSeq.
	Reason string `json:"reason,omitempty"`
}

// SnapshotsLeftOut returns the snapshots within the restored range that
// the restore leaves out, each with its Reason (over the snapshot size
// bound, corrupt, another log's): the restored log holds every event, and
// replay folds the events those snapshots covered again.
// BackupReport.SnapshotsLeftOut lists the same for a restore to the end
// of the backup.
func (p *RestorePlan) SnapshotsLeftOut() []RestoreFile {
	var out []RestoreFile
	for _, f := range p.Files {
		if f.Kind == kindSnapshot && f.Reason != "" {
			out = append(out, f)
		}
	}
	return out
}

const (
	actionCopy    = "copy"
	actionCut     = "cut"
	actionLeave   = "leave out"
	restoreTarget = "the end of the backup"
)

// Restore restores the backup in the directory backup into dir, which
// must be absent, empty (hidden files and a lost+found directory aside,
// as for Open; they are left alone), or hold an interrupted restore (which
// is started over, see startRestore). The backup is checked first — its
// manifest, every file's size and SHA-256, and every frame as it is
// copied — and a damaged one is refused
// with the file and the reason (an error matching ErrNotABackup or
// ErrBackupCorrupt): before anything is written, or, for a damaged frame
// (a sealed segment is backed up as it is on disk), once what the restore
// wrote is removed again.
//
// The restored log ends where the backup does, or at the point in time
// opts asks for (always at a batch boundary); snapshots after that point
// are left out. So is a snapshot the backup holds as the log held it (its
// bytes match the manifest) that cannot be used: over
// opts.MaxSnapshotSize, corrupt (damaged before the backup was taken), or
// another log's. Snapshots are derived from the events, so it does not
// cost the restore of the events and of the other snapshots; the plan
// names it with its Reason (RestorePlan.SnapshotsLeftOut), in a dry run
// too, and VerifyBackup reports the same (BackupReport.SnapshotsLeftOut).
// A snapshot missing from the backup or whose bytes do not match the
// manifest (damaged in the backup) refuses it, as any damaged file does.
// The restored log gets a new log ID — a new timeline: once appended to, it
// diverges from the log it was copied from — and every segment and kept
// snapshot is relabelled with it, so that no snapshot of the old timeline
// is ever taken for one of the new. A restore writes RestoreMarker first
// and removes it last, after every file and the directory are fsynced: a
// restore killed midway leaves a directory that Open refuses
// (ErrRestoreIncomplete) until a restore is run again.
func Restore(ctx context.Context, backup, dir string, opts RestoreOptions) (RestorePlan, error) {
	plan := RestorePlan{Backup: backup, Dir: dir}
	src, err := vfs.OpenOS(backup)
	if err != nil {
		return plan, fmt.Errorf("evlog: restore: opening backup %s: %w", backup, err)
	}
	defer src.Close()
	// A dry run refuses what the restore would refuse: its target too.
	if err := checkRestoreDir(dir); err != nil {
		return plan, err
	}
	var openDst func() (vfs.FS, error)
	if !opts.DryRun {
		perm := opts.Perm
		if perm == 0 {
			perm = DefaultPerm
		}
		var o *vfs.OS
		defer func() {
			if o != nil {
				o.Close()
			}
		}()
		openDst = func() (vfs.FS, error) {
			var err error
			o, err = vfs.CreateOSPerm(dir, perm)
			return o, err
		}
	}
	return restoreFS(ctx, src, backup, openDst, dir, opts, &plan)
}

// checkRestoreDir fails unless dir is absent, empty, or holds an
// interrupted restore whose files are all provably its own (see
// restartFiles). Hidden files and lost+found do not count (as for Open):
// a freshly mounted file system's root is empty. A symbolic link to
// nothing is refused: the restore could not create the directory.
func checkRestoreDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if fi, lerr := os.Lstat(dir); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			to, _ := os.Readlink(dir)
			return fmt.Errorf("evlog: restore: %s is a symbolic link to %s, which does not exist: create the directory %s (the restore fills it), or restore into another directory", dir, to, to)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("evlog: restore: reading %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if !ignoredDirEntry(e.Name(), e.IsDir()) {
			names = append(names, e.Name())
		}
	}
	if err := checkRestoreNames(dir, names); err != nil {
		return err
	}
	if !slices.ContainsFunc(names, isRestoreMarker) {
		return nil
	}
	// An interrupted restore: a dry run refuses what the restore would.
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		return fmt.Errorf("evlog: restore: reading %s: %w", dir, err)
	}
	defer fsys.Close()
	if names, err = fsys.List(); err != nil {
		return fmt.Errorf("evlog: restore: listing %s: %w", dir, err)
	}
	_, err = restartFiles(fsys, dir, names)
	return err
}

func isRestoreMarker(n string) bool { return n == RestoreMarker || n == RestoreMarker+".tmp" }

// checkRestoreNames is checkRestoreDir for dir holding the entries names:
// it fails unless they are none (LOCK and ignored entries aside) or hold
// the marker of an interrupted restore.
func checkRestoreNames(dir string, names []string) error {
	// The lock file a restore (or a writer) takes: alone, it holds nothing.
	names = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == LockFile || ignoredDirEntry(n, false) })
	if len(names) == 0 || slices.ContainsFunc(names, isRestoreMarker) {
		return nil
	}
	return fmt.Errorf("evlog: restore: %s is not empty (it holds %q%s): restore into a new or empty directory (hidden files and lost+found are allowed)", dir, names[0], moreSuffix(len(names)))
}

// restoreFS is Restore from the backup directory src into the directory
// openDst creates, once the backup has been checked (nil: a dry run).
func restoreFS(ctx context.Context, src vfs.FS, backup string, openDst func() (vfs.FS, error), dir string, opts RestoreOptions, plan *RestorePlan) (RestorePlan, error) {
	// Read everything (checked, opened) before writing anything; beside a
	// pass updating the backup, start over when it changed the manifest.
	blank := *plan
	rb, err := besidePass(src, func() (*restoreSource, error) {
		*plan = blank
		return prepareRestore(ctx, src, backup, opts, plan)
	})
	if err != nil {
		return *plan, err
	}
	defer rb.close()
	segs, cut := rb.bl.v.segs, rb.cut
	// copyFile writes file i of the plan, relabelled with id, to w,
	// checking every frame as it goes.
	copyFile := func(w io.Writer, i int, id segment.LogID) error {
		f := plan.Files[i]
		switch {
		case f.Kind == kindSnapshot:
			_, err := snapshot.CopyAs(w, f.Name, rb.snaps[f.Name], f.Size, id, opts.MaxSnapshotSize)
			return err
		case f.Action == actionCut:
			_, err := segment.CopyPrefixAs(w, segs[i].Segment, cut, id)
			return err
		default:
			_, err := segment.CopyAs(w, segs[i].Segment, id)
			return err
		}
	}
	damaged := func(name string, err error) error {
		if errors.Is(err, segment.ErrCorrupt) || errors.Is(err, snapshot.ErrCorrupt) {
			return &BackupError{Dir: backup, File: name, Reason: err.Error(), Err: ErrBackupCorrupt}
		}
		return nil
	}
	if openDst == nil {
		// A dry run checks what a restore would check as it copies: every
		// frame of every file kept.
		id, err := parseLogID(plan.LogID)
		if err != nil {
			return *plan, err
		}
		for i, f := range plan.Files {
			if err := ctx.Err(); err != nil {
				return *plan, err
			}
			if f.Action == actionLeave {
				continue
			}
			if err := copyFile(io.Discard, i, id); err != nil {
				if derr := damaged(f.Name, err); derr != nil {
					return *plan, derr
				}
				return *plan, fmt.Errorf("evlog: restore: reading %s of backup %s: %w", f.Name, backup, err)
			}
		}
		return *plan, nil
	}
	dst, err := openDst()
	if err != nil {
		return *plan, fmt.Errorf("evlog: restore: creating %s: %w", dir, err)
	}
	// The directory was found empty (or holding an interrupted restore)
	// before the backup was read, which takes long: hold it, as a writer
	// does, and look again, so that a writer or a restore that took it
	// meanwhile keeps its files.
	lock, err := dst.Lock(LockFile)
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			return *plan, fmt.Errorf("evlog: restore: %s is in use (a log is open on it, or another restore writes into it): restore into another directory: %w", dir, err)
		}
		return *plan, fmt.Errorf("evlog: restore: locking %s: %w", dir, err)
	}
	defer lock.Close()
	names, err := dst.List()
	if err != nil {
		return *plan, fmt.Errorf("evlog: restore: listing %s: %w", dir, err)
	}
	if err := checkRestoreNames(dir, names); err != nil {
		return *plan, err
	}

	id, err := newLogID()
	if err != nil {
		return *plan, err
	}
	plan.NewLogID = id.String()
	if err := startRestore(dst, dir, plan); err != nil {
		if _, ok := errors.AsType[*StartOverError](err); ok {
			return *plan, err
		}
		return *plan, fmt.Errorf("evlog: restore into %s: %w", dir, err)
	}
	var written []string
	for i, f := range plan.Files {
		if err := ctx.Err(); err != nil {
			return *plan, err
		}
		if f.Action == actionLeave {
			continue
		}
		written = append(written, f.Name)
		err := writeRestored(dst, f.Name, func(w io.Writer) error { return copyFile(w, i, id) })
		if derr := damaged(f.Name, err); derr != nil {
			// Found damaged midway (a sealed segment is copied into a
			// backup as it is on disk): leave the directory as it was found.
			if uerr := undoRestore(dst, written); uerr != nil {
				return *plan, errors.Join(derr, fmt.Errorf("evlog: restore: removing what it wrote into %s: %w", dir, uerr))
			}
			return *plan, derr
		}
		if err != nil {
			return *plan, fmt.Errorf("evlog: restore: writing %s into %s: %w", f.Name, dir, err)
		}
	}
	if err := dst.SyncDir(); err != nil {
		return *plan, fmt.Errorf("evlog: restore: syncing %s: %w", dir, err)
	}
	if err := dst.Remove(RestoreMarker); err != nil {
		return *plan, fmt.Errorf("evlog: restore: removing %s from %s: %w", RestoreMarker, dir, err)
	}
	if err := dst.SyncDir(); err != nil {
		return *plan, fmt.Errorf("evlog: restore: syncing %s: %w", dir, err)
	}
	return *plan, nil
}

// startRestore empties dst of an interrupted restore's files and writes
// the marker (with the plan, for whoever finds it). It removes only files
// provably that restore's (restartFiles: those its plan lists whose
// header carries its new log ID, their temporaries), and nothing at all
// when any other file is there: a marker beside another log's files
// (copied in by hand, a directory reused) must not cost them. An
// interrupted restore's marker is never removed, only replaced by the new
// one (an atomic rename) once every other file of it is gone, durably:
// killed at any point, startRestore leaves a directory that still holds
// the marker (or nothing), which the next restore accepts. (Removing it
// in listing order removed it before snapshots named a… to f…, which sort
// after it.)
func startRestore(dst vfs.FS, dir string, plan *RestorePlan) error {
	names, err := dst.List()
	if err != nil {
		return err
	}
	remove, err := restartFiles(dst, dir, names)
	if err != nil {
		return err
	}
	for _, n := range remove {
		if err := dst.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if len(remove) > 0 {
		// Gone before the new marker (with another log ID) replaces the
		// old one: never the new marker beside the old restore's files.
		if err := dst.SyncDir(); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(plan, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(dst, RestoreMarker, append(b, '\n'))
}

// undoRestore removes the files a restore wrote (names) and then its
// marker: the marker stays until everything else is gone, so a crash
// midway leaves a directory that Open refuses and a new restore starts
// over.
func undoRestore(dst vfs.FS, names []string) error {
	for _, n := range names {
		if err := dst.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := dst.SyncDir(); err != nil {
		return err
	}
	if err := dst.Remove(RestoreMarker); err != nil {
		return err
	}
	return dst.SyncDir()
}

// writeRestored creates name in dst, filled by write and fsynced, under
// a temporary name (name+".tmp") renamed to name once complete: a file
// under its own name always has its whole header, which a restore
// starting over checks before it removes the file.
func writeRestored(dst vfs.FS, name string, write func(io.Writer) error) error {
	tmp := name + ".tmp"
	f, err := dst.Create(tmp)
	if err != nil {
		return err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = dst.RenameNoReplace(tmp, name)
	}
	if err != nil {
		if rerr := dst.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}
