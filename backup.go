package evlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
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
// was called. A log opened with OpenReadOnly backs up what it serves
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
	prev, err := checkBackupDir(dst, dir, opts.Incremental)
	if err != nil {
		return res, err
	}
	if !l.readOnly {
		if err := l.Sync(ctx); err != nil {
			return res, fmt.Errorf("evlog: backup: syncing the log: %w", err)
		}
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return res, ErrClosed
	}
	v, seq, logID, visibleEnd := l.v, l.durableSeq, l.logID, l.pub.end
	v.ref()
	l.mu.RUnlock()
	defer v.unref()
	if prev != nil && prev.LogID != logID.String() {
		return res, fmt.Errorf("%w: %s holds a backup of log %s, this is log %s: back it up into another directory", ErrBackupDiverged, dir, prev.LogID, logID)
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

	bw := backupWriter{l: l, dst: dst, dir: dir, link: !opts.NoLink, res: &res}
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
// backup).
func checkBackupDir(dst vfs.FS, dir string, incremental bool) (*Manifest, error) {
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
	return nil, nil
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

// planBackup lists the segments of the backup at seq: every sealed segment
// that ends at or before seq, whole, then the segment holding seq+1 (the
// newest, normally) up to the end of seq's batch. visibleEnd is where the
// visible frames of the newest segment end.
func (l *Log) planBackup(ctx context.Context, v *view, seq uint64, visibleEnd int64) ([]backupPart, error) {
	var parts []backupPart
	for _, h := range v.segs {
		if h.FirstSeq() > seq+1 {
			break
		}
		p := backupPart{seg: h, BackupedFile: BackupedFile{Name: h.Name, Kind: kindSegment, FirstSeq: h.FirstSeq()}}
		if h.Sealed && h.Trailer.LastSeq <= seq {
			p.cut, p.Sealed, p.LastSeq = h.Size, true, h.Trailer.LastSeq
			var tb [segment.TrailerSize]byte
			if _, err := h.File().ReadAt(tb[:], h.Size-segment.TrailerSize); err != nil {
				return nil, fmt.Errorf("evlog: backup: reading %s: %w", h.Name, err)
			}
			p.Trailer = hex.EncodeToString(tb[:])
			parts = append(parts, p)
			if h.Trailer.LastSeq == seq && h == v.segs[len(v.segs)-1] {
				break
			}
			continue
		}
		if h.Header.Flags&segment.FlagCompressed != 0 {
			// Compaction rewrites only segments at or before the durable
			// end; a compressed one holding seqs after it is corruption.
			return nil, fmt.Errorf("evlog: backup: compressed segment %s holds seqs after the durable end %d: %w", h.Name, seq, ErrCorrupt)
		}
		end := h.Size
		if !h.Sealed && h == v.segs[len(v.segs)-1] {
			end = visibleEnd // the writer's active segment grows
		}
		cut, err := batchEnd(ctx, h, seq, end)
		if err != nil {
			return nil, err
		}
		p.cut, p.LastSeq = cut, seq
		parts = append(parts, p)
		break
	}
	return parts, nil
}

// batchEnd returns the offset in the uncompressed segment h right after
// the batch that ends at seq, reading no further than end — and after the mark that directly follows
// it, if any (the mark of the fsync that made it durable) — or HeaderSize
// when seq precedes the segment. It reads and checks every frame up to
// there.
func batchEnd(ctx context.Context, h *segHandle, seq uint64, end int64) (int64, error) {
	if seq < h.FirstSeq() {
		return segment.HeaderSize, nil
	}
	ra, recEnd, err := h.Records()
	if err != nil {
		return 0, err
	}
	if h.Sealed {
		end = recEnd
	}
	r := segment.NewReader(ra, segment.HeaderSize, end)
	found := int64(-1)
	for n := 0; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		off := r.Offset()
		f, err := r.Next()
		if found >= 0 {
			if err == nil && f.Kind == segment.KindMark {
				if d, derr := segment.DecodeMark(f.Payload, f.Offset); derr == nil && d == found {
					return r.Offset(), nil
				}
			}
			return found, nil
		}
		if err == io.EOF {
			return 0, fmt.Errorf("evlog: backup: %s ends before the batch of seq %d: %w", h.Name, seq, ErrCorrupt)
		}
		if fe, ok := errors.AsType[*segment.FrameError](err); ok {
			return 0, &segment.CorruptError{File: h.Name, Offset: fe.Offset, Reason: fe.Reason}
		}
		if err != nil {
			return 0, fmt.Errorf("evlog: backup: reading %s at %d: %w", h.Name, off, err)
		}
		if f.Kind != segment.KindCommit {
			continue
		}
		c, err := segment.DecodeCommit(f.Payload)
		if err != nil {
			return 0, &segment.CorruptError{File: h.Name, Offset: f.Offset, Reason: err.Error()}
		}
		switch last := c.FirstSeq + uint64(c.Count) - 1; {
		case last == seq:
			found = r.Offset()
		case last > seq:
			return 0, fmt.Errorf("evlog: backup: seq %d is not the end of a batch in %s: %w", seq, h.Name, ErrCorrupt)
		}
	}
}

// backupSnapshots lists the snapshots at or before seq that verify and
// belong to this log.
func (l *Log) backupSnapshots(ctx context.Context, seq uint64) (parts []backupPart, skipped []string, err error) {
	names, err := l.fs.List()
	if err != nil {
		return nil, nil, fmt.Errorf("evlog: backup: listing the log directory: %w", err)
	}
	var store *snapshot.Store
	for _, n := range names {
		_, s, ok := snapshot.ParseFileName(n)
		if !ok || s > seq {
			continue
		}
		if store == nil {
			if store, err = l.Snapshots(); err != nil {
				return nil, nil, err
			}
		}
		m, err := store.Verify(ctx, n)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // pruned meanwhile
		case err != nil || m.LogID != l.logID:
			skipped = append(skipped, n)
			l.logger.Warn("evlog: backup: leaving out a snapshot that does not verify", "file", n, "err", err)
			continue
		}
		parts = append(parts, backupPart{snap: n, BackupedFile: BackupedFile{Name: n, Kind: kindSnapshot, Subject: m.Name, Seq: m.Seq}})
	}
	return parts, skipped, ctx.Err()
}

// eventTime returns the recorded time of the event at seq.
func (l *Log) eventTime(ctx context.Context, seq uint64) (time.Time, error) {
	for e, err := range l.Range(ctx, seq, seq) {
		if err != nil {
			return time.Time{}, err
		}
		return e.Time, nil
	}
	return time.Time{}, fmt.Errorf("evlog: no event at seq %d", seq)
}

// backupWriter puts the files of a backup in place.
type backupWriter struct {
	l    *Log
	dst  vfs.FS
	dir  string
	link bool
	res  *BackupResult
	buf  []byte
}

// source returns the file to copy p from and its size.
func (bw *backupWriter) source(p *backupPart) (io.ReaderAt, int64, func(), error) {
	if p.seg != nil {
		return p.seg.File(), p.cut, func() {}, nil
	}
	f, err := bw.l.fs.Open(p.snap)
	if err != nil {
		return nil, 0, nil, err
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	return f, size, func() { f.Close() }, nil
}

// place puts p into the backup, reusing old (its entry in the previous
// manifest) where it can, and fills in p's size and checksum.
func (bw *backupWriter) place(p *backupPart, old *BackupedFile) error {
	src, size, done, err := bw.source(p)
	if errors.Is(err, fs.ErrNotExist) && p.seg == nil {
		return nil // a snapshot pruned meanwhile (left out below)
	}
	if err != nil {
		return fmt.Errorf("evlog: backup: opening %s: %w", p.Name, err)
	}
	defer done()
	p.Size = size
	if p.seg == nil {
		// A snapshot's last 4 bytes are its file checksum, covering all of
		// it: its identity.
		var c [4]byte
		if _, err := src.ReadAt(c[:], size-4); err != nil {
			return fmt.Errorf("evlog: backup: reading %s: %w", p.Name, err)
		}
		p.Trailer = hex.EncodeToString(c[:])
	}
	if old != nil && old.Size == size && old.Trailer != "" && old.Trailer == p.Trailer && (old.Sealed || p.seg == nil) {
		p.SHA256 = old.SHA256 // immutable, and the same file
		bw.res.Kept++
		return nil
	}
	h := sha256.New()
	from := int64(0)
	if old != nil && old.Sealed {
		old = nil // a sealed file that changed (never, but): replace it whole
	}
	// A prefix the previous backup holds is always its own copy (only
	// whole sealed segments and snapshots are ever linked, and only
	// under names the previous manifest does not list), so it may be
	// appended to in place: never a file shared with the log.
	if old != nil && old.Size <= size {
		// The previous backup holds a prefix of this file (the newest
		// segment, grown or sealed since): check that the source still
		// starts with it, then add the rest.
		if err := hashRange(h, src, 0, old.Size, &bw.buf); err != nil {
			return fmt.Errorf("evlog: backup: reading %s: %w", p.Name, err)
		}
		if hex.EncodeToString(h.Sum(nil)) != old.SHA256 {
			return fmt.Errorf("%w: %s of the log no longer starts with the %d bytes the backup in %s holds (the log was restored or rewritten since): take a full backup into a new directory", ErrBackupDiverged, p.Name, old.Size, bw.dir)
		}
		from = old.Size
		if from == size {
			p.SHA256 = old.SHA256
			bw.res.Kept++
			return nil
		}
	}
	if bw.link && from == 0 && (p.Sealed || p.seg == nil) {
		ok, err := bw.linkFile(p, src, size, h, from)
		if err != nil || ok {
			return err
		}
	}
	if from > 0 {
		// Only a file that is the backup's alone is appended to in place
		// (defence in depth: one shared with the log — a hard link an
		// older release, or a hand, put under a prefix's name — would
		// change the log): otherwise it is copied anew, whole.
		shared, err := vfs.Shared(bw.dst, p.Name)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("evlog: backup: %s: %w", p.Name, err)
		}
		if !shared && err == nil {
			return bw.appendRange(p, src, from, size, h)
		}
		h.Reset()
	}
	return bw.copyFile(p, src, size, h)
}

// linkFile hard-links p into the backup (through a temporary, renamed over
// any older copy) and hashes it; ok is false when it cannot be linked.
func (bw *backupWriter) linkFile(p *backupPart, src io.ReaderAt, size int64, h hash.Hash, from int64) (ok bool, err error) {
	srcFS := bw.l.fs
	tmp := p.Name + ".tmp"
	if err := bw.dst.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := vfs.Link(srcFS, p.Name, bw.dst, tmp); err != nil {
		return false, nil // compacted away meanwhile, another file system, …: copy
	}
	f, err := bw.dst.Open(tmp)
	if err != nil {
		return false, err
	}
	defer f.Close()
	// The link must be the very file read so far (names are never reused,
	// but a segment may have been compacted away and the name restored).
	if n, _ := f.Size(); n != size || !sameRange(f, src, 0, min(size, 4096)) || !sameRange(f, src, max(0, size-4096), size) {
		bw.dst.Remove(tmp)
		return false, nil
	}
	if err := hashRange(h, f, from, size, &bw.buf); err != nil {
		return false, err
	}
	if err := bw.dst.Rename(tmp, p.Name); err != nil {
		return false, err
	}
	p.SHA256 = hex.EncodeToString(h.Sum(nil))
	bw.res.Linked++
	bw.res.BytesLinked += size
	return true, nil
}

// copyFile copies the first size bytes of src into the backup as p.Name
// (written to a temporary, fsynced, renamed).
func (bw *backupWriter) copyFile(p *backupPart, src io.ReaderAt, size int64, h hash.Hash) error {
	tmp := p.Name + ".tmp"
	// A leftover temporary may be a hard link to the log's file (a pass
	// killed between link and rename): unlink it, never truncate it.
	if err := bw.dst.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("evlog: backup: removing %s: %w", tmp, err)
	}
	f, err := bw.dst.Create(tmp)
	if err != nil {
		return fmt.Errorf("evlog: backup: creating %s: %w", tmp, err)
	}
	err = copyRange(io.MultiWriter(f, h), src, 0, size, &bw.buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = bw.dst.Rename(tmp, p.Name)
	}
	if err != nil {
		return fmt.Errorf("evlog: backup: copying %s: %w", p.Name, err)
	}
	p.SHA256 = hex.EncodeToString(h.Sum(nil))
	bw.res.Copied++
	bw.res.BytesCopied += size
	return nil
}

// appendRange adds src's bytes [from, size) to the backup's copy of p,
// which the previous manifest lists with from bytes (anything after them
// is left by an interrupted pass and is cut first). The previous manifest
// stays valid throughout: it covers only the first from bytes.
func (bw *backupWriter) appendRange(p *backupPart, src io.ReaderAt, from, size int64, h hash.Hash) error {
	f, err := bw.dst.OpenReadWrite(p.Name)
	if err != nil {
		return fmt.Errorf("evlog: backup: opening %s: %w", p.Name, err)
	}
	err = func() error {
		n, err := f.Size()
		if err != nil {
			return err
		}
		if n < from {
			return fmt.Errorf("%s is %d bytes, the previous manifest says %d: %w", p.Name, n, from, ErrBackupCorrupt)
		}
		if n > from {
			if err := f.Truncate(from); err != nil {
				return err
			}
		}
		if _, err := f.Seek(from, io.SeekStart); err != nil {
			return err
		}
		if err := copyRange(io.MultiWriter(f, h), src, from, size, &bw.buf); err != nil {
			return err
		}
		return f.Sync()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("evlog: backup: appending to %s: %w", p.Name, err)
	}
	p.SHA256 = hex.EncodeToString(h.Sum(nil))
	bw.res.Copied++
	bw.res.BytesCopied += size - from
	return nil
}

// copyRange writes src's bytes [from, to) to w.
func copyRange(w io.Writer, src io.ReaderAt, from, to int64, buf *[]byte) error {
	if len(*buf) == 0 {
		*buf = make([]byte, 1<<20)
	}
	for off := from; off < to; {
		n := int(min(int64(len(*buf)), to-off))
		m, err := src.ReadAt((*buf)[:n], off)
		if m < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if _, err := w.Write((*buf)[:n]); err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}

// hashRange adds src's bytes [from, to) to h.
func hashRange(h hash.Hash, src io.ReaderAt, from, to int64, buf *[]byte) error {
	return copyRange(h, src, from, to, buf)
}

// sameRange reports whether a and b hold the same bytes in [from, to).
func sameRange(a, b io.ReaderAt, from, to int64) bool {
	x, y := make([]byte, to-from), make([]byte, to-from)
	if n, _ := a.ReadAt(x, from); n != len(x) {
		return false
	}
	if n, _ := b.ReadAt(y, from); n != len(y) {
		return false
	}
	return string(x) == string(y)
}

// writeManifest writes m to dst atomically: a temporary, fsynced, renamed
// over the old manifest, and the directory fsynced.
func writeManifest(dst vfs.FS, m *Manifest) error {
	b, err := encodeManifest(m)
	if err != nil {
		return err
	}
	return writeFileAtomic(dst, ManifestFile, b)
}

// writeFileAtomic writes name in fsys: a temporary, fsynced, renamed, and
// the directory fsynced.
func writeFileAtomic(fsys vfs.FS, name string, b []byte) error {
	tmp := name + ".tmp"
	if err := fsys.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := fsys.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, name)
	}
	if err == nil {
		err = fsys.SyncDir()
	}
	return err
}

// removeUnlisted removes, after a new manifest m is durable, the files of
// the backup's kinds that m does not list (the previous backup's files
// that are no longer part of it, temporaries of an interrupted pass).
func removeUnlisted(dst vfs.FS, m *Manifest) ([]string, error) {
	names, err := dst.List()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, n := range names {
		if n == ManifestFile || n == backupLockFile || !backupFileName(n) {
			continue
		}
		if _, ok := m.file(n); ok {
			continue
		}
		if err := dst.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("evlog: backup: removing %s: %w", n, err)
		}
		if !strings.HasSuffix(n, ".tmp") {
			removed = append(removed, n)
		}
	}
	if len(removed) > 0 {
		if err := dst.SyncDir(); err != nil {
			return removed, err
		}
	}
	return removed, nil
}
