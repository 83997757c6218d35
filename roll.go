package evlog

// The active segment: opening it at Open, starting the next one and
// rolling to it (sealing the full one).

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// openActive opens the newest segment for appending, truncating its torn
// tail first.
func (w *writer) openActive(rec *recovered) error {
	s := rec.segs[len(rec.segs)-1]
	f, err := w.l.fs.OpenReadWrite(s.Name)
	if err != nil {
		return fmt.Errorf("evlog: opening %s for appending: %w", s.Name, err)
	}
	end := rec.active.End
	if t := rec.report.TornTail; t != nil {
		if err := f.Truncate(end); err != nil {
			return errors.Join(fmt.Errorf("evlog: recovery: truncating the torn tail of %s: %w", s.Name, err), f.Close())
		}
	}
	// What recovery read may still be only in the page cache (a previous
	// writer under SyncNever, or one that crashed before its fsync): make
	// it durable before building on it. This also makes a truncation
	// durable.
	if err := f.Sync(); err != nil {
		return errors.Join(fmt.Errorf("evlog: recovery: syncing %s: %w", s.Name, err), f.Close())
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		return errors.Join(fmt.Errorf("evlog: seeking in %s: %w", s.Name, err), f.Close())
	}
	w.f, w.name, w.hdr, w.header, w.idx = f, s.Name, s.HeaderBytes, s.Header, rec.active
	w.end, w.durable = end, end
	w.markEnd = rec.active.Durable
	if b := rec.active.Base(); b != nil {
		w.ckptEnd = b.End
	}
	if w.markEnd+segment.MarkFrameSize == end {
		w.markEnd = end // the file ends with the mark recording the rest
	}
	// Record on disk that what recovery kept is durable now.
	if err := w.mark(); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := w.syncOpenMark(); err != nil {
		return errors.Join(err, f.Close())
	}
	return nil
}

// upgradeActive moves appending off a newest segment of format version 1,
// which takes no marks (a version 1 reader would take one for a torn
// tail), so that what is appended from now on is recorded as durable
// (docs/FORMAT.md, "Recovery"): a version 1 segment holding events is
// sealed by a roll; an empty one (its header, fsynced at creation) is
// replaced by a version 2 segment under the same name — an atomic rename
// over a file that holds no event.
func (w *writer) upgradeActive() error {
	if w.header.Version >= 2 {
		return nil
	}
	if w.idx.Count > 0 {
		err := w.roll()
		if err != nil && w.failed == nil {
			// Out of space for the new segment: nothing changed; go on
			// appending to the version 1 segment, without marks.
			w.l.logger.Warn("evlog: could not move appends to a version 2 segment; appending to the version 1 segment without durability marks", "file", w.name, "err", err)
			return nil
		}
		return err
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("evlog: closing %s: %w", w.name, err)
	}
	w.f = nopFile{}
	return w.startSegment(true)
}

// nopFile stands in for a closed active segment while it is replaced.
type nopFile struct{ vfs.File }

func (nopFile) Close() error { return nil }

// strictFlag is the header flag of the segments this writer creates:
// FlagStrict when it acknowledges appends only once durable (SyncAlways).
// Readers in other processes follow it until the segment's first mark.
func (w *writer) strictFlag() uint16 {
	if w.opts.Sync == SyncAlways {
		return segment.FlagStrict
	}
	return 0
}

// startSegment creates a new active segment after the last committed seq
// and publishes a view holding it. The previous active segment, if any,
// must already be sealed and closed by the caller; with replaceEmpty it is
// an empty segment under the same name, replaced atomically.
func (w *writer) startSegment(replaceEmpty bool) error {
	h := w.nextHeader()
	create := segment.Create
	if replaceEmpty {
		create = segment.ReplaceEmpty
	}
	f, hb, err := create(w.l.fs, h)
	if err != nil {
		return err
	}
	return w.enterSegment(f, hb, h, nil, nil)
}

// nextHeader is the header of the segment after the last committed seq.
func (w *writer) nextHeader() segment.Header {
	return segment.Header{LogID: w.l.logID, BaseSeq: w.lastSeq + 1, Created: time.Now(), Flags: w.strictFlag()}
}

// enterSegment makes f, just created with header h (encoded as hb), the
// active segment, and publishes a view in which it follows the sealed
// segments and, when not nil, sealed: the previous active segment, which
// the view lists sealed now instead of active (a roll). Everything
// committed before the new segment is durable (a roll's seal fsynced it;
// a start follows recovery, which did). The new segment's index is sized
// like full, the sealed segment's whole index (segment.NewIndexLike),
// unless nil (a start). On
// an error f is closed and nothing changed; sealed is the caller's to
// close.
func (w *writer) enterSegment(f vfs.File, hb [segment.HeaderSize]byte, h segment.Header, sealed *segment.Segment, full *segment.Index) error {
	name := segment.FormatFileName(h.BaseSeq, 0)
	seg, err := segment.Open(w.l.fs, name)
	if err != nil {
		return errors.Join(err, f.Close())
	}
	w.f, w.name, w.hdr, w.header = f, name, hb, seg.Header
	if full != nil {
		w.idx = segment.NewIndexLike(h.BaseSeq, full)
	} else {
		w.idx = segment.NewIndex(h.BaseSeq)
	}
	w.end, w.durable, w.markEnd, w.ckptEnd = segment.HeaderSize, segment.HeaderSize, segment.HeaderSize, 0
	w.markSeq = 0 // the new file's fsyncs make no mark of the sealed one durable (its seal's did)
	// A reader in another process serves a durably sealed segment whole,
	// and nothing of the new one until a mark: everything before it.
	w.markSyncedThrough(w.lastSeq)
	w.dirtySince = time.Time{}
	l := w.l
	l.mu.Lock()
	defer l.mu.Unlock()
	var segs []*segHandle
	if l.v != nil {
		segs = append(segs, l.v.segs...)
		if l.v.active != nil { // the old active segment: sealed, or replaced
			segs = segs[:len(segs)-1]
		}
	}
	if sealed != nil {
		segs = append(segs, l.segHandle(sealed))
	}
	l.swapViewLocked(append(segs, l.segHandle(seg)), w.idx)
	l.setEndLocked(segment.HeaderSize)
	l.setDurableLocked(w.lastSeq)
	return nil
}

// needRoll reports whether r does not fit in the active segment after the
// staged requests. An empty segment takes any request (a batch never spans
// segments; a segment may exceed SegmentSize by one batch).
func (w *writer) needRoll(r *request) bool {
	return w.needRollAt(w.stageMark(), r)
}

// needRollAt is needRoll for r staged after m. Besides SegmentSize, the
// segment must stay within the bounds of the format once sealed (its
// footer's frames, its count of events: segment.Extent.Fits), which
// SegmentSize alone does not ensure for tiny events in a large segment.
func (w *writer) needRollAt(m stageMark, r *request) bool {
	staged := m.seq - w.lastSeq - 1
	if w.idx.Count == 0 && staged == 0 {
		return false
	}
	if w.end+int64(m.buf)+int64(r.size) > w.opts.SegmentSize {
		return true
	}
	n := int(staged) + r.events
	if w.idx.ExtentWith(n, event.MaxStreamLen).Fits(false) == nil {
		return false // far from any bound: the names' lengths need no look
	}
	return w.idx.ExtentWith(n, max(w.stagedName, r.longestStream())).Fits(false) != nil
}

// longestStream returns the length of the longest stream name of r
// (computed once).
func (r *request) longestStream() int {
	if r.nameLen == 0 {
		n := 0
		if r.src != nil {
			for i := range r.src.parts() {
				s, _, _ := r.src.part(i)
				n = max(n, len(s))
			}
		} else {
			for i := range r.batch {
				n = max(n, len(r.batch[i].Stream))
			}
		}
		r.nameLen = max(n, 1)
	}
	return r.nameLen
}

// roll seals the active segment and starts the next one. The new segment
// is created (durably) first and the old one sealed second, so a sealed
// newest segment always means its successor went missing.
func (w *writer) roll() error {
	if w.idx.Count == 0 {
		// The next segment would start at the same seq, under the same
		// name as the active one, and replace it.
		return nil
	}
	if err := w.l.checkLock(); err != nil {
		w.fail(err) // another writer may be appending: stop before any more damage
		return w.failed
	}
	// The new segment's entry would rely on a directory fsync after a
	// failed one, which proves nothing (dirsync.go).
	if w.checkDirSync(); w.failed != nil {
		return w.failed
	}
	// The checkpoint being written in the background reads the segment's
	// file and names the segment: done before the seal.
	if w.settleCheckpoint(); w.failed != nil {
		return w.failed
	}
	full, err := w.idx.Materialize() // the footer indexes the whole segment
	if err != nil {
		w.fail(err)
		return w.failed
	}
	h := w.nextHeader()
	nf, nhb, err := segment.Create(w.l.fs, h)
	if err != nil {
		name := segment.FormatFileName(h.BaseSeq, 0)
		if _, serr := w.l.fs.Stat(name); errors.Is(err, syscall.ENOSPC) && serr != nil {
			// Nothing changed on disk: fail this batch only.
			return fmt.Errorf("evlog: no space left to start a new segment; nothing of this batch was written: %w", err)
		}
		w.fail(err)
		return w.failed
	}
	oldName := w.name
	sealed, err := w.seal(full)
	if err != nil {
		nf.Close()
	} else if err = w.enterSegment(nf, nhb, h, sealed, full); err != nil {
		sealed.Close()
	}
	if err != nil {
		w.fail(err)
		return w.failed
	}
	w.dropCheckpoint(oldName)
	return nil
}

// seal writes the footer of the active segment (full is its index,
// materialized), fsyncs and closes it, and reopens it sealed.
func (w *writer) seal(full *segment.Index) (*segment.Segment, error) {
	footer, _ := full.AppendFooter(w.footerBuf[:0], w.hdr)
	w.footerBuf = footer
	if _, err := w.f.Write(footer); err != nil {
		return nil, fmt.Errorf("sealing %s: %w", w.name, err)
	}
	if err := w.syncFile(); err != nil {
		return nil, fmt.Errorf("sealing %s: %w", w.name, err)
	}
	if err := w.f.Close(); err != nil {
		return nil, fmt.Errorf("closing %s: %w", w.name, err)
	}
	sealed, err := segment.Open(w.l.fs, w.name)
	if err == nil && !sealed.Sealed {
		sealed.Close()
		err = fmt.Errorf("evlog: %s reads back unsealed after sealing", w.name)
	}
	if err != nil {
		return nil, err
	}
	return sealed, nil
}
