package evlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

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
	head := manifestHead(src)
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
	var store *snapshot.Store
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
			// Checked now, as VerifyBackup checks it (one judgement for
			// both): the copy is relabelled with the restored log's ID,
			// which erases what shows that a snapshot of another log, or
			// of a later seq than its name says, does not belong there.
			if store == nil {
				if store, err = snapshot.Open(view, snapshot.Options{MaxRawSize: opts.MaxSnapshotSize}); err != nil {
					return nil, err
				}
			}
			why, err := checkBackupSnapshot(ctx, store, backup, m, e.Name)
			if err != nil {
				return nil, err
			}
			if why != "" {
				// Unusable, as the backup took it (over the bound,
				// corrupt, another log's). Snapshots are derived:
				// restore the events without it, and say so.
				f.Action, f.Reason = actionLeave, why
				sf.Close()
				delete(rb.snaps, e.Name)
			}
		}
		plan.Files = append(plan.Files, f)
	}
	if err := leftOutBeside(src, head, len(plan.SnapshotsLeftOut())); err != nil {
		return nil, err
	}
	return rb, nil
}
