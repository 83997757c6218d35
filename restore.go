package evlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
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

// RestoreOptions configures Restore.
type RestoreOptions struct {
	// ToSeq, when not 0, ends the restored log at the last batch boundary
	// at or before this seq. ToTime, when not zero, ends it at the last
	// batch boundary at or before the last event recorded at or before
	// ToTime. With both, the earlier point wins; with neither, the log
	// ends where the backup does. A batch is never split.
	ToSeq  uint64
	ToTime time.Time
	// DryRun checks the backup and returns the plan without writing
	// anything.
	DryRun bool
	// Perm is the permission of the files created (0: DefaultPerm).
	Perm fs.FileMode
	// MaxSnapshotSize bounds the decompressed size of a snapshot in the
	// backup (0: snapshot.DefaultMaxRawSize); a larger one is refused as
	// damaged. Set it to the Options.Snapshot.MaxRawSize of the log.
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
}

const (
	actionCopy    = "copy"
	actionCut     = "cut"
	actionLeave   = "leave out"
	restoreTarget = "the end of the backup"
)

// Restore restores the backup in the directory backup into dir, which
// must be absent, empty, or hold an interrupted restore (which is started
// over). The backup is checked first — its manifest, every file's size and
// SHA-256, and every frame as it is copied — and a damaged one is refused
// with the file and the reason (an error matching ErrNotABackup or
// ErrBackupCorrupt), before anything is written.
//
// The restored log ends where the backup does, or at the point in time
// opts asks for (always at a batch boundary); snapshots after that point
// are left out. It gets a new log ID — a new timeline: once appended to, it
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
	var openDst func() (vfs.FS, error)
	if !opts.DryRun {
		if err := checkRestoreDir(dir); err != nil {
			return plan, err
		}
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
// interrupted restore.
func checkRestoreDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("evlog: restore: reading %s: %w", dir, err)
	}
	var names []string
	marker := false
	for _, e := range entries {
		// The marker, or its temporary: a restore killed while writing
		// the marker wrote nothing else.
		marker = marker || e.Name() == RestoreMarker || e.Name() == RestoreMarker+".tmp"
		names = append(names, e.Name())
	}
	if len(names) == 0 || marker {
		return nil
	}
	return fmt.Errorf("evlog: restore: %s is not empty (it holds %q%s): restore into a new or empty directory", dir, names[0], moreSuffix(len(names)))
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
	if openDst == nil {
		return *plan, nil
	}
	dst, err := openDst()
	if err != nil {
		return *plan, fmt.Errorf("evlog: restore: creating %s: %w", dir, err)
	}

	id, err := newLogID()
	if err != nil {
		return *plan, err
	}
	plan.NewLogID = id.String()
	if err := startRestore(dst, plan); err != nil {
		return *plan, fmt.Errorf("evlog: restore into %s: %w", dir, err)
	}
	for i, f := range plan.Files {
		if err := ctx.Err(); err != nil {
			return *plan, err
		}
		if f.Action == actionLeave {
			continue
		}
		err := writeRestored(dst, f.Name, func(w io.Writer) error {
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
		})
		if err != nil {
			if errors.Is(err, segment.ErrCorrupt) || errors.Is(err, snapshot.ErrCorrupt) {
				return *plan, &BackupError{Dir: backup, File: f.Name, Reason: err.Error(), Err: ErrBackupCorrupt}
			}
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

// checkBackupFiles checks that every file the manifest lists is a regular
// file at least as long as listed whose first Size bytes hash to its
// SHA-256.
func checkBackupFiles(ctx context.Context, src vfs.FS, backup string, m *Manifest) error {
	var buf []byte
	for _, e := range m.Files {
		if err := ctx.Err(); err != nil {
			return err
		}
		bad := func(format string, args ...any) error {
			return &BackupError{Dir: backup, File: e.Name, Reason: fmt.Sprintf(format, args...), Err: ErrBackupCorrupt}
		}
		info, err := src.Lstat(e.Name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return bad("missing (the manifest lists it)")
		case err != nil:
			return err
		case !info.Regular():
			return bad("is a %s, not a regular file", vfs.TypeName(info.Mode))
		case info.Size < e.Size:
			return bad("is %d bytes, the manifest says %d (truncated)", info.Size, e.Size)
		}
		f, err := src.Open(e.Name)
		if err != nil {
			return err
		}
		h := sha256.New()
		err = hashRange(h, f, 0, e.Size, &buf)
		f.Close()
		if err != nil {
			return fmt.Errorf("evlog: reading %s of backup %s: %w", e.Name, backup, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 {
			return bad("SHA-256 %s, the manifest says %s (the file was changed or damaged)", got[:16], e.SHA256[:16])
		}
	}
	return nil
}

// checkBackupLog checks that the log read from a backup is the one its
// manifest describes.
func checkBackupLog(bl *Log, backup string, m *Manifest) error {
	var reason string
	switch {
	case m.Seq > 0 && bl.logID.String() != m.LogID:
		reason = fmt.Sprintf("its segments belong to log %s, the manifest says %s", bl.logID, m.LogID)
	case bl.LastSeq() != m.Seq:
		reason = fmt.Sprintf("its segments end at seq %d, the manifest says %d", bl.LastSeq(), m.Seq)
	default:
		return nil
	}
	return &BackupError{Dir: backup, Reason: reason, Err: ErrBackupCorrupt}
}

// restoreEnd returns the seq the restored log ends at: the target, bounded
// by the backup's end, moved back to a batch boundary later (cutAfter).
func restoreEnd(ctx context.Context, bl *Log, m *Manifest, opts RestoreOptions, plan *RestorePlan) (uint64, error) {
	end, target := m.Seq, []string{}
	if opts.ToSeq > 0 {
		end = min(end, opts.ToSeq)
		target = append(target, fmt.Sprintf("seq %d", opts.ToSeq))
	}
	if !opts.ToTime.IsZero() {
		s, err := bl.SeqAt(ctx, opts.ToTime)
		if err != nil {
			return 0, err
		}
		end = min(end, s)
		target = append(target, "time "+opts.ToTime.UTC().Format(time.RFC3339Nano))
	}
	plan.Target = restoreTarget
	if len(target) > 0 {
		plan.Target = strings.Join(target, " and ")
	}
	return end, nil
}

// cutAfter returns the logical offset in s right after the last batch that
// ends at or before end, and that batch's last seq (s's first seq - 1 when
// no batch of s qualifies: the cut is then the header).
func cutAfter(ctx context.Context, s *segHandle, end uint64) (int64, uint64, error) {
	ra, recEnd, err := s.Records()
	if err != nil {
		return 0, 0, err
	}
	cut, last := int64(segment.HeaderSize), s.FirstSeq()-1
	if end < s.FirstSeq() {
		return cut, last, nil
	}
	r := segment.NewReader(ra, segment.HeaderSize, recEnd)
	for n := 0; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, 0, err
			}
		}
		f, err := r.Next()
		if err == io.EOF {
			return cut, last, nil
		}
		if fe, ok := errors.AsType[*segment.FrameError](err); ok {
			return 0, 0, &segment.CorruptError{File: s.Name, Offset: fe.Offset, Reason: fe.Reason}
		}
		if err != nil {
			return 0, 0, err
		}
		if f.Kind != segment.KindCommit {
			continue
		}
		c, err := segment.DecodeCommit(f.Payload)
		if err != nil {
			return 0, 0, &segment.CorruptError{File: s.Name, Offset: f.Offset, Reason: err.Error()}
		}
		l := c.FirstSeq + uint64(c.Count) - 1
		if l > end {
			return cut, last, nil
		}
		cut, last = r.Offset(), l
	}
}

// startRestore empties dst of an interrupted restore's files and writes
// the marker (with the plan, for whoever finds it).
func startRestore(dst vfs.FS, plan *RestorePlan) error {
	names, err := dst.List()
	if err != nil {
		return err
	}
	for _, n := range names {
		if n == RestoreMarker || n == RestoreMarker+".tmp" || backupFileName(n) {
			if err := dst.Remove(n); err != nil {
				return err
			}
		}
	}
	b, err := json.MarshalIndent(plan, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(dst, RestoreMarker, append(b, '\n'))
}

// writeRestored creates name in dst, fills it with write, and fsyncs it.
func writeRestored(dst vfs.FS, name string, write func(io.Writer) error) error {
	f, err := dst.Create(name)
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
	return err
}

// restoreSource is a backup checked and opened for a restore.
type restoreSource struct {
	bl    *Log // the backup, read through its manifest
	k     int  // the segment the restored log ends in (-1: none)
	cut   int64
	snaps map[string]vfs.File // the snapshots kept, open
}

func (rb *restoreSource) close() {
	rb.bl.Close()
	for _, f := range rb.snaps {
		f.Close()
	}
}

// prepareRestore checks the backup and plans the restore into plan.
func prepareRestore(ctx context.Context, src vfs.FS, backup string, opts RestoreOptions, plan *RestorePlan) (_ *restoreSource, err error) {
	m, err := readManifest(src, backup)
	if err != nil {
		return nil, err
	}
	if err := checkBackupFiles(ctx, src, backup, m); err != nil {
		return nil, err
	}
	view := newBackupView(src, m)
	bl, err := openFS(view, Options{}, true)
	if err != nil {
		return nil, &BackupError{Dir: backup, Reason: err.Error(), Err: errors.Join(ErrBackupCorrupt, err)}
	}
	rb := &restoreSource{bl: bl, k: -1, snaps: map[string]vfs.File{}}
	defer func() {
		if err != nil {
			rb.close()
		}
	}()
	if err := checkBackupLog(bl, backup, m); err != nil {
		return nil, err
	}
	plan.LogID, plan.BackupSeq, plan.BackupTime = m.LogID, m.Seq, m.Time
	end, err := restoreEnd(ctx, bl, m, opts, plan)
	if err != nil {
		return nil, err
	}
	segs := bl.v.segs
	// k: the segment the restored log ends in (its newest): the last whose
	// first seq is at most end+1. Those before it are copied whole.
	k := -1
	for i, s := range segs {
		if s.FirstSeq() <= end+1 {
			k = i
		}
	}
	rb.k = k
	if k >= 0 {
		if rb.cut, end, err = cutAfter(ctx, segs[k], end); err != nil {
			return nil, &BackupError{Dir: backup, File: segs[k].Name, Reason: err.Error(), Err: ErrBackupCorrupt}
		}
	}
	plan.EndSeq, plan.CutEvents = end, m.Seq-end
	if end > 0 {
		if plan.EndTime, err = bl.eventTime(ctx, end); err != nil {
			return nil, err
		}
	}
	for i, s := range segs {
		f := RestoreFile{Name: s.Name, Kind: kindSegment, Size: view.files[s.Name].Size, FirstSeq: s.FirstSeq()}
		switch {
		case i < k:
			f.Action, f.LastSeq = actionCopy, s.Trailer.LastSeq
		case i == k:
			f.Action, f.LastSeq = actionCut, end
		default:
			f.Action = actionLeave
		}
		plan.Files = append(plan.Files, f)
	}
	for _, e := range m.Files {
		if e.Kind != kindSnapshot {
			continue
		}
		f := RestoreFile{Name: e.Name, Kind: kindSnapshot, Size: e.Size, Seq: e.Seq, Action: actionCopy}
		if e.Seq > end {
			f.Action = actionLeave
		} else {
			// Opened now: a pass may remove it once it leaves the backup.
			sf, err := view.Open(e.Name)
			if err != nil {
				return nil, &BackupError{Dir: backup, File: e.Name, Reason: err.Error(), Err: ErrBackupCorrupt}
			}
			rb.snaps[e.Name] = sf
		}
		plan.Files = append(plan.Files, f)
	}
	return rb, nil
}
