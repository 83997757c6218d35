package evlog

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// backupWriter puts the files of a backup in place.
//
// It never changes or removes the bytes that the published manifest (pub)
// lists for a file — the first Size bytes of each listed file — so that a
// reader holding that manifest (VerifyBackup, Restore beside the pass)
// finds every file as listed: a file it must replace under its name is
// first dropped from the published manifest (unpublish), a copy whose
// listed bytes end in marks the log has cut is first listed without them
// (relist), new bytes go only after the listed ones (appendRange), and
// files the new manifest no longer lists are removed only after it is
// published (removeUnlisted).
type backupWriter struct {
	l    *Log
	dst  vfs.FS
	dir  string
	link bool
	res  *BackupResult
	buf  []byte
	pub  *Manifest // the manifest published in dst (nil: none)
}

// unpublish makes sure that the published manifest does not list name
// before the pass replaces it under its name with other bytes: if it does,
// a manifest without it (the same backup, the same S) is written and made
// durable first. Only entries whose absence leaves a valid backup may be
// unpublished (a snapshot, or a newest segment that holds no event);
// anything else is an error, and nothing is written.
func (bw *backupWriter) unpublish(name string) error {
	if bw.pub == nil || unpublishSkipped {
		return nil
	}
	i := slices.IndexFunc(bw.pub.Files, func(f BackupedFile) bool { return f.Name == name })
	if i < 0 {
		return nil
	}
	m := *bw.pub
	m.Files = slices.Delete(slices.Clone(m.Files), i, i+1)
	if err := m.check(); err != nil {
		return fmt.Errorf("evlog: backup: %s of %s must be replaced, and the backup without it is not valid (%v): take a full backup into a new directory", name, bw.dir, err)
	}
	if err := writeUnpublished(bw.dst, &m); err != nil {
		return fmt.Errorf("evlog: backup: writing the manifest of %s without %s: %w", bw.dir, name, err)
	}
	bw.pub = &m
	return nil
}

// Set only by the teeth tests of the backup pass crash loop
// (TestBackupPassCrashLoopHasTeeth), to break the order unpublish keeps:
// unpublishSkipped leaves the published manifest listing a file the pass
// then replaces under its name; writeUnpublished writes the in-between
// manifest (a test swaps in one that skips its fsync); keptCopyCut cuts a
// copy kept shorter (a lost mark) to its new size while the published
// manifest still lists it longer.
var (
	unpublishSkipped = false
	writeUnpublished = writeManifest
	keptCopyCut      = false
)

// cutForTeeth cuts name in dst to size, fsynced (keptCopyCut only).
func cutForTeeth(dst vfs.FS, name string, size int64) error {
	f, err := dst.OpenReadWrite(name)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
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
	// have: the previous backup's copy is still there, a regular file at
	// least as long as listed. What it holds is kept (or appended to)
	// without reading it; otherwise it is copied anew, so that the new
	// manifest is true.
	have := false
	if old != nil {
		info, err := bw.dst.Lstat(p.Name)
		switch {
		case err == nil:
			have = info.Regular() && info.Size >= old.Size
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("evlog: backup: %s: %w", p.Name, err)
		}
	}
	if p.seg == nil {
		// A snapshot's last 4 bytes are its file checksum, covering all of
		// it: its identity.
		var c [4]byte
		if _, err := src.ReadAt(c[:], size-4); err != nil {
			return fmt.Errorf("evlog: backup: reading %s: %w", p.Name, err)
		}
		p.Trailer = hex.EncodeToString(c[:])
	}
	if old != nil && have && old.Size == size && old.Trailer != "" && old.Trailer == p.Trailer && (old.Sealed || p.seg == nil) {
		p.SHA256 = old.SHA256 // immutable, and the same file
		bw.res.Kept++
		return nil
	}
	h := sha256.New()
	from := int64(0)
	if old != nil && old.Sealed && have {
		// A sealed segment the backup holds whole, which the log now
		// holds with other bytes under its name: the log was rewritten
		// under the backup (never by a compaction, which writes new
		// names). The backup's copy may be the only one of it.
		return fmt.Errorf("%w: %s of the log is not the sealed segment the backup in %s holds under that name (the log was rewritten since): keep this backup, and take a full one into another directory", ErrBackupDiverged, p.Name, bw.dir)
	}
	if old != nil && (old.Sealed || p.seg == nil) {
		// A snapshot saved again under its name (removed, then saved at
		// the same seq), or a sealed copy that is missing or short: never
		// a prefix of the new one: replace it whole — a copy that is
		// there as listed once the published manifest no longer lists it
		// (one that is not is already not what that manifest says).
		if have {
			if err := bw.unpublish(p.Name); err != nil {
				return err
			}
		}
		old = nil
	}
	if old != nil && old.LastSeq < old.FirstSeq && p.LastSeq >= old.LastSeq {
		// The previous backup holds no event of this segment, only its
		// header: one replaced under its name while empty (a writer of
		// this release replaces an empty segment of format version 1) is
		// no divergence: copy it anew, once the published manifest no
		// longer lists it. (The same header, grown, is appended to.)
		same, err := bw.startsWith(src, old)
		if err != nil {
			return err
		}
		if !same {
			if have {
				if err := bw.unpublish(p.Name); err != nil {
					return err
				}
			}
			old = nil
		}
	}
	if old != nil && old.Size > size {
		// The previous backup holds more of this file than the log does
		// now: the log lost the end of it — events (a power loss took
		// batches a read-only pass copied; other events may follow them
		// now), or, harmlessly, only a mark frame after its last batch (a
		// mark the writer wrote, then cut after its write failed).
		var sum []byte
		if have && p.LastSeq >= old.LastSeq {
			var err error
			if sum, err = bw.samePrefix(p, src, size); err != nil {
				return err
			}
		}
		if sum == nil && have && p.LastSeq >= old.LastSeq {
			// Or a mark lost, and the log grown where it was, by less
			// than the copy holds after it.
			cut, err := bw.cutMarks(p, src, size, old)
			if err != nil {
				return err
			}
			if cut != nil {
				return bw.appendAfter(p, src, size, cut, h)
			}
		}
		if sum == nil {
			return fmt.Errorf("%w: %s of the log is %d bytes, the backup in %s holds %d of it (the log lost what the backup holds after them): keep this backup, and take a full one into another directory", ErrBackupDiverged, p.Name, size, bw.dir, old.Size)
		}
		// Only a mark lost: the backup's copy starts with the log's
		// bytes. Keep it as it is (the published manifest lists more of
		// it), listing its first size bytes: the next pass cuts the rest
		// before it appends.
		if keptCopyCut {
			if err := cutForTeeth(bw.dst, p.Name, size); err != nil {
				return err
			}
		}
		p.SHA256 = hex.EncodeToString(sum)
		bw.res.Kept++
		return nil
	}
	// A prefix the previous backup holds is always its own copy (only
	// whole sealed segments and snapshots are ever linked, and only
	// under names the previous manifest does not list), so it may be
	// appended to in place: never a file shared with the log.
	if old != nil {
		// The previous backup holds a prefix of this file (the newest
		// segment, grown or sealed since): check that the source still
		// starts with it, then add the rest.
		if err := hashRange(h, src, 0, old.Size, &bw.buf); err != nil {
			return fmt.Errorf("evlog: backup: reading %s: %w", p.Name, err)
		}
		if hex.EncodeToString(h.Sum(nil)) != old.SHA256 {
			if have && p.LastSeq >= old.LastSeq {
				// A mark lost, and the log grown where it was.
				cut, err := bw.cutMarks(p, src, size, old)
				if err != nil {
					return err
				}
				if cut != nil {
					h.Reset()
					return bw.appendAfter(p, src, size, cut, h)
				}
			}
			return fmt.Errorf("%w: %s of the log no longer starts with the %d bytes the backup in %s holds (the log was restored or rewritten since): take a full backup into a new directory", ErrBackupDiverged, p.Name, old.Size, bw.dir)
		}
		from = old.Size
		if from == size && have {
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
		if !shared && err == nil && have {
			return bw.appendRange(p, src, from, size, h)
		}
		h.Reset()
	}
	return bw.copyFile(p, src, size, h)
}

// cutMarks reports whether the backup's copy of p ends in mark frames the
// log (src, size bytes) no longer has, and nothing else: a writer cut them
// after a failed write (back to its last committed end), and may have
// appended other frames where they were since. It walks the frames of the
// copy's listed bytes (old.Size) from its header; when the copy's last
// frames, from some frame boundary c on, are all whole marks — checksums
// valid, kind mark, each one a mark this segment's writer wrote at its
// offset (its tag) — and the log starts with the copy's first c bytes,
// no event or commit frame the backup holds is missing from the log. It
// then publishes a manifest listing the copy with its first c bytes (the
// same backup, the same S: the marks hold no event), durably, before
// anything changes the copy, and returns that entry. It returns nil, and
// writes nothing, otherwise: a log rewritten under the backup.
func (bw *backupWriter) cutMarks(p *backupPart, src io.ReaderAt, size int64, old *BackupedFile) (*BackupedFile, error) {
	f, err := bw.dst.Open(p.Name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("evlog: backup: opening %s: %w", p.Name, err)
	}
	defer f.Close()
	hb := make([]byte, segment.HeaderSize)
	if old.Size < segment.HeaderSize {
		return nil, nil
	}
	if _, err := f.ReadAt(hb, 0); err != nil {
		return nil, fmt.Errorf("evlog: backup: reading %s: %w", p.Name, err)
	}
	hdr, err := segment.DecodeHeader(hb)
	if err != nil {
		return nil, nil
	}
	// marks: the offsets of the copy's last frames, all genuine marks.
	var marks []int64
	r := segment.NewReader(f, segment.HeaderSize, old.Size)
	for {
		fr, err := r.Next()
		if err == io.EOF {
			break
		}
		if _, ok := errors.AsType[*segment.FrameError](err); ok {
			return nil, nil // not whole frames: not what a writer cut
		}
		if err != nil {
			return nil, fmt.Errorf("evlog: backup: reading %s: %w", p.Name, err)
		}
		if fr.Kind != segment.KindMark {
			marks = marks[:0]
			continue
		}
		if _, ok := segment.VerifyMark(hdr, fr.Payload, fr.Offset); !ok {
			marks = marks[:0]
			continue
		}
		marks = append(marks, fr.Offset)
	}
	d, err := bw.commonPrefix(f, src, min(old.Size, size))
	if err != nil {
		return nil, fmt.Errorf("evlog: backup: reading %s: %w", p.Name, err)
	}
	// c: the last mark at or before the first byte where the log and the
	// copy differ; every frame after it is a mark.
	c := int64(-1)
	for _, m := range marks {
		if m <= d {
			c = m
		}
	}
	if c < 0 {
		return nil, nil
	}
	h := sha256.New()
	if err := hashRange(h, f, 0, c, &bw.buf); err != nil {
		return nil, fmt.Errorf("evlog: backup: reading %s: %w", p.Name, err)
	}
	cut := *old
	cut.Size, cut.SHA256 = c, hex.EncodeToString(h.Sum(nil))
	if err := bw.relist(&cut); err != nil {
		return nil, err
	}
	return &cut, nil
}

// commonPrefix returns the number of bytes, up to n, that a and b start
// with alike.
func (bw *backupWriter) commonPrefix(a, b io.ReaderAt, n int64) (int64, error) {
	const chunk = 64 << 10
	x, y := make([]byte, chunk), make([]byte, chunk)
	for off := int64(0); off < n; off += chunk {
		k := int(min(chunk, n-off))
		for _, r := range []struct {
			ra  io.ReaderAt
			buf []byte
		}{{a, x[:k]}, {b, y[:k]}} {
			if m, err := r.ra.ReadAt(r.buf, off); m < k {
				if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return 0, err
			}
		}
		for i := range k {
			if x[i] != y[i] {
				return off + int64(i), nil
			}
		}
	}
	return n, nil
}

// relist makes sure that the published manifest lists no more of f.Name
// than f does (its first f.Size bytes, whose SHA-256 is f.SHA256) before
// the pass changes the bytes after them: if it lists more, a manifest
// listing f instead (the same backup, the same S) is written and made
// durable first.
func (bw *backupWriter) relist(f *BackupedFile) error {
	if bw.pub == nil || unpublishSkipped {
		return nil
	}
	i := slices.IndexFunc(bw.pub.Files, func(g BackupedFile) bool { return g.Name == f.Name })
	if i < 0 || bw.pub.Files[i].Size <= f.Size {
		return nil
	}
	m := *bw.pub
	m.Files = slices.Clone(m.Files)
	m.Files[i].Size, m.Files[i].SHA256 = f.Size, f.SHA256
	if err := m.check(); err != nil {
		return fmt.Errorf("evlog: backup: %s of %s must be listed shorter, and the backup so is not valid (%v): take a full backup into a new directory", f.Name, bw.dir, err)
	}
	if err := writeUnpublished(bw.dst, &m); err != nil {
		return fmt.Errorf("evlog: backup: writing the manifest of %s listing %s without its cut marks: %w", bw.dir, f.Name, err)
	}
	bw.pub = &m
	return nil
}

// appendAfter appends src's bytes after the first cut.Size bytes of the
// backup's copy of p (which the published manifest lists, see cutMarks)
// up to size, checking first that src still starts with them; h is
// empty.
func (bw *backupWriter) appendAfter(p *backupPart, src io.ReaderAt, size int64, cut *BackupedFile, h hash.Hash) error {
	if err := hashRange(h, src, 0, cut.Size, &bw.buf); err != nil {
		return fmt.Errorf("evlog: backup: reading %s: %w", p.Name, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != cut.SHA256 {
		return fmt.Errorf("%w: %s of the log no longer starts with the %d bytes the backup in %s holds (the log changed during the pass): take a full backup into a new directory", ErrBackupDiverged, p.Name, cut.Size, bw.dir)
	}
	if cut.Size == size {
		p.SHA256 = cut.SHA256
		bw.res.Kept++
		return nil
	}
	// Only a file that is the backup's alone is appended to in place (see
	// place); otherwise it is copied anew, whole.
	shared, err := vfs.Shared(bw.dst, p.Name)
	if err != nil {
		return fmt.Errorf("evlog: backup: %s: %w", p.Name, err)
	}
	if shared {
		h.Reset()
		return bw.copyFile(p, src, size, h)
	}
	return bw.appendRange(p, src, cut.Size, size, h)
}

// samePrefix returns the SHA-256 of the first size bytes of src when the
// backup's copy of p starts with them (compared by their SHA-256), nil
// when it does not.
func (bw *backupWriter) samePrefix(p *backupPart, src io.ReaderAt, size int64) ([]byte, error) {
	f, err := bw.dst.Open(p.Name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("evlog: backup: opening %s: %w", p.Name, err)
	}
	defer f.Close()
	a, b := sha256.New(), sha256.New()
	if err := hashRange(a, f, 0, size, &bw.buf); err != nil {
		return nil, fmt.Errorf("evlog: backup: reading %s: %w", p.Name, err)
	}
	if err := hashRange(b, src, 0, size, &bw.buf); err != nil {
		return nil, fmt.Errorf("evlog: backup: reading %s: %w", p.Name, err)
	}
	if sum := b.Sum(nil); string(a.Sum(nil)) == string(sum) {
		return sum, nil
	}
	return nil, nil
}

// startsWith reports whether src starts with the bytes old lists (by
// their SHA-256); a source shorter than them does not.
func (bw *backupWriter) startsWith(src io.ReaderAt, old *BackupedFile) (bool, error) {
	h := sha256.New()
	err := hashRange(h, src, 0, old.Size, &bw.buf)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("evlog: backup: reading %s: %w", old.Name, err)
	}
	return hex.EncodeToString(h.Sum(nil)) == old.SHA256, nil
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
