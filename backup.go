package evlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

// BackupOptions configures Log.Backup.
type BackupOptions struct {
	// Incremental takes the backup into a directory that already holds a
	// backup of this log, copying only what is new: sealed segments not
	// in it yet (a sealed segment already there — same name, size and
	// trailer — is not read again), the newest segment's new range, new
	// snapshots. The result is the same as a full backup taken at that
	// moment; files of the previous backup that are no longer part of it
	// (segments replaced by a compaction, pruned snapshots) are removed
	// once the new manifest is durable. Without Incremental the directory
	// must be absent, empty, or hold only the files of an interrupted
	// backup (no manifest).
	Incremental bool
	// NoLink copies every file. By default a sealed segment or a snapshot
	// (files that never change once written) is hard-linked when the
	// backup directory is on the log's file system: instant and free of
	// space, but such a backup shares the disk's fate (it protects against
	// mistakes, not against the loss of the disk).
	NoLink bool
	// Source is recorded in the manifest as where the backup came from
	// (BackupStatus uses it to measure the lag). Default: empty.
	Source string
}

// BackupResult reports what a backup did.
type BackupResult struct {
	Dir string
	// Seq is S, the seq the backup is consistent at: every event up to it,
	// nothing after, whole batches only. Time is its recorded time.
	Seq  uint64
	Time time.Time
	// Files is the number of files in the backup (segments and snapshots).
	Files int
	// Linked, Copied and Kept count the files hard-linked, copied (whole,
	// or their new range), and kept unchanged from the previous backup.
	Linked, Copied, Kept int
	// BytesCopied and BytesLinked are the bytes written and the bytes of
	// the hard-linked files.
	BytesCopied, BytesLinked int64
	// Removed lists the files of the previous backup that are not part of
	// this one, removed after its manifest was written.
	Removed []string
	// Skipped lists the snapshots left out because they did not verify
	// (snapshots are optional: replay falls back to the events).
	Skipped []string
}

// Backup copies the log, as of its durable end, into the directory dst
// while appends go on: a backup consistent at one seq S — every event up
// to S, nothing after, whole batches only — plus the snapshots at or
// before S, and a manifest (MANIFEST: the log ID, S and its time, every
// file with its size and SHA-256) written last and atomically, so that a
// directory without a valid manifest is never taken for a backup.
//
// S is the log's DurableSeq when the backup starts; a writer's log is
// first synced (Sync), so S covers every append acknowledged before Backup
// was called. Under SyncAlways that sync also writes the mark recording
// the last group, which a lack of space may have skipped (see
// SyncAlways), and Backup fails with an error matching syscall.ENOSPC
// while it cannot be written: a manifest never claims a seq a reader in
// another process does not serve. A log opened with OpenReadOnly backs up what it serves
// (refresh it first): beside a writer running SyncAlways, what that
// writer has made durable; beside one running SyncInterval or SyncNever,
// every committed batch, which a power loss of the source may still take.
//
// Sealed segments and snapshots are hard-linked when possible (see
// BackupOptions.NoLink), else copied and fsynced; the newest segment is
// copied up to the end of S's batch. Sealed segments are copied as they
// are on disk, not verified: run VerifyBackup (evlogctl backup --verify)
// to check every record of a backup. Backup takes a lock in dst
// (BACKUP.LOCK), so two backups into one directory cannot interleave. It
// never modifies the log's directory.
func (l *Log) Backup(ctx context.Context, dst string, opts BackupOptions) (BackupResult, error) {
	if src, ok := l.osDir(); ok {
		a, aerr := os.Stat(src)
		b, berr := os.Stat(dst)
		if aerr == nil && berr == nil && os.SameFile(a, b) {
			return BackupResult{}, fmt.Errorf("evlog: backup: %s is the log's own directory: give another directory", dst)
		}
	}
	fsys, err := vfs.CreateOSPerm(dst, l.opts.Perm)
	if err != nil {
		return BackupResult{}, fmt.Errorf("evlog: backup: opening %s: %w", dst, err)
	}
	defer fsys.Close()
	res, err := l.backupFS(ctx, fsys, dst, opts)
	res.Dir = dst
	return res, err
}

// osDir returns the log's directory when it is one of the operating
// system.
func (l *Log) osDir() (string, bool) { return l.dir, l.dir != "" }

// backupLockFile keeps two backups out of one directory.
const backupLockFile = "BACKUP.LOCK"

// backupPart is one file of the backup being taken.
type backupPart struct {
	BackupedFile
	seg  *segHandle // segments
	cut  int64      // segments: bytes to copy (the file size when whole)
	snap string     // snapshots: the source file
}

// testBackupSynced, when a test sets it, runs after a writer's Backup
// made its marks durable and before it reads the seq it backs up to.
var testBackupSynced func(*Log)

// backupFS is Backup into the directory dst (named dir, for messages).
func (l *Log) backupFS(ctx context.Context, dst vfs.FS, dir string, opts BackupOptions) (res BackupResult, err error) {
	lock, err := dst.Lock(backupLockFile)
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			return res, fmt.Errorf("evlog: backup: another backup is writing into %s: %w", dir, err)
		}
		return res, fmt.Errorf("evlog: backup: locking %s: %w", dir, err)
	}
	defer lock.Close()
	prev, err := checkBackupDir(dst, dir, opts.Incremental, l.LogID())
	if err != nil {
		return res, err
	}
	if !l.readOnly {
		// syncMarked, not Sync: under SyncAlways the manifest must not
		// claim a group that no mark records (one skipped for lack of
		// space), which a reader in another process does not serve.
		if err := l.syncMarked(ctx); err != nil {
			return res, fmt.Errorf("evlog: backup: syncing the log: %w", err)
		}
	}
	if testBackupSynced != nil {
		testBackupSynced(l)
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return res, ErrClosed
	}
	v, seq, logID, visibleEnd := l.v, l.durableSeq, l.logID, l.pub.end
	if !l.readOnly && l.opts.Sync == SyncAlways {
		// A group committed since syncMarked returned is fsynced, but
		// its mark may not be yet: no further than the durable marks,
		// which a reader in another process serves after a power loss.
		seq = min(seq, l.markSynced.Load())
	}
	v.ref()
	l.mu.RUnlock()
	defer v.unref()
	if prev != nil && prev.LogID != logID.String() {
		return res, fmt.Errorf("%w: %s holds a backup of log %s, this is log %s: back it up into another directory", ErrBackupDiverged, dir, prev.LogID, logID)
	}
	if prev != nil && seq < prev.Seq {
		// The log lost events the backup holds (committed batches a read-only
		// pass backed up, taken by a power loss of the source before its
		// writer fsynced them): the backup may be their only copy.
		return res, fmt.Errorf("%w: the log ends at seq %d, the backup in %s at seq %d: the log lost events the backup holds; keep this backup, and take a full one into another directory", ErrBackupDiverged, seq, dir, prev.Seq)
	}

	parts, err := l.planBackup(ctx, v, seq, visibleEnd)
	if err != nil {
		return res, err
	}
	if snaps, skipped, err := l.backupSnapshots(ctx, seq); err != nil {
		return res, err
	} else {
		parts = append(parts, snaps...)
		res.Skipped = skipped
	}
	res.Seq = seq
	if seq > 0 {
		if res.Time, err = l.eventTime(ctx, seq); err != nil {
			return res, err
		}
	}

	bw := backupWriter{l: l, dst: dst, dir: dir, link: !opts.NoLink, res: &res, pub: prev}
	m := &Manifest{Version: manifestVersion, LogID: logID.String(), Seq: seq, Time: res.Time, Source: opts.Source,
		SegmentFormats: []int{}, SnapshotFormats: []int{}}
	for i := range parts {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		p := &parts[i]
		var old *BackupedFile
		if prev != nil {
			if f, ok := prev.file(p.Name); ok && f.Kind == p.Kind {
				old = &f
			}
		}
		if err := bw.place(p, old); err != nil {
			return res, err
		}
		if p.SHA256 == "" {
			continue // a snapshot pruned since it was listed
		}
		m.Files = append(m.Files, p.BackupedFile)
		if p.seg != nil {
			if v := int(p.seg.Header.Version); !slices.Contains(m.SegmentFormats, v) {
				m.SegmentFormats = append(m.SegmentFormats, v)
			}
		} else if !slices.Contains(m.SnapshotFormats, 1) {
			m.SnapshotFormats = append(m.SnapshotFormats, 1)
		}
	}
	res.Files = len(m.Files)
	// Every file and link is durable before the manifest names it.
	if err := dst.SyncDir(); err != nil {
		return res, fmt.Errorf("evlog: backup: syncing %s: %w", dir, err)
	}
	m.Created = l.opts.Clock().UTC()
	if err := writeManifest(dst, m); err != nil {
		return res, fmt.Errorf("evlog: backup: writing the manifest of %s: %w", dir, err)
	}
	res.Removed, err = removeUnlisted(dst, m)
	return res, err
}

// checkBackupDir checks what dst holds before a backup: for an incremental
// one, the previous manifest (nil when there is none: then, as for a full
// backup, the directory must hold nothing but the files of an interrupted
// backup of the log logID, which the backup replaces or removes).
func checkBackupDir(dst vfs.FS, dir string, incremental bool, logID [16]byte) (*Manifest, error) {
	names, err := dst.List()
	if err != nil {
		return nil, fmt.Errorf("evlog: backup: listing %s: %w", dir, err)
	}
	if slices.Contains(names, ManifestFile) {
		if !incremental {
			return nil, fmt.Errorf("evlog: backup: %s already holds a backup: take an incremental one (--incremental), or give an empty directory", dir)
		}
		return readManifest(dst, dir)
	}
	for _, n := range names {
		if !backupFileName(n) && !strings.HasPrefix(n, ".") {
			return nil, fmt.Errorf("evlog: backup: %s holds %q, which no backup writes: give an empty directory", dir, n)
		}
	}
	// Named like a backup's is not enough: a segment of another log (a
	// log directory without its LOCK, a backup that lost its manifest)
	// may be the only copy of that log's events.
	for _, n := range names {
		if _, _, ok := segment.ParseFileName(n); !ok {
			continue
		}
		if err := leftoverSegment(dst, n, logID); err != nil {
			return nil, fmt.Errorf("evlog: backup: %s holds %s, which is not a segment an interrupted backup of this log left (%v); nothing was written: give an empty directory", dir, n, err)
		}
	}
	return nil, nil
}

// leftoverSegment returns nil when the segment file name in dst carries a
// valid header of the log logID.
func leftoverSegment(dst vfs.FS, name string, logID [16]byte) error {
	f, err := dst.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	var b [segment.HeaderSize]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return fmt.Errorf("reading its header: %w", err)
	}
	h, err := segment.DecodeHeader(b[:])
	switch {
	case err != nil:
		return err
	case h.LogID != logID:
		return fmt.Errorf("a segment of log %s", h.LogID)
	}
	return nil
}

// backupFileName reports whether a backup writes files named n (its
// segments, snapshots, their temporaries, its lock and manifest).
func backupFileName(n string) bool {
	n = strings.TrimSuffix(n, ".tmp")
	if _, _, ok := segment.ParseFileName(n); ok {
		return true
	}
	if _, _, ok := snapshot.ParseFileName(n); ok {
		return true
	}
	return n == ManifestFile || n == backupLockFile
}
