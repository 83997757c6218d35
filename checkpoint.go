package evlog

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"syscall"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// Checkpoints of the active segment's index (docs/FORMAT.md,
// "Checkpoints"). The writer writes NAME.ckpt, the index of the active
// segment's records up to an offset P it has fsynced, at Close and every
// checkpointInterval bytes of records; Open then reads the checkpoint's
// header and trailer instead of scanning the segment, and scans only from
// P on, with the usual torn-tail and corruption rules. A checkpoint is
// never required: one that is absent, damaged, stale or of another
// segment is ignored (with a warning when it is damaged) and the segment
// scanned in full. An authentic one is proof, though: a segment that no
// longer holds what it records as fsynced is corruption (scanNewest).

// checkpointInterval is how many bytes of records the writer appends
// between two checkpoints of the active segment.
// Every checkpoint encodes the whole index (as the seal does), so they
// are few: one halfway through the segment, besides the one at Close.
func (o Options) checkpointInterval() int64 { return max(o.SegmentSize/2, 1<<10) }

// trustCheckpointBeyondDurable, set only by the teeth test, makes the
// writer checkpoint what it has written but not yet fsynced, and recovery
// trust a checkpoint without checking the segment still holds what it
// indexes: a checkpoint trusted beyond the durable end, which the crash
// loops must catch.
var trustCheckpointBeyondDurable = false

// scanNewest builds the index of s, the newest, unsealed segment: from its
// checkpoint when one proves a prefix, scanning only past it; otherwise by
// scanning the whole segment. It returns the names of checkpoint files
// found unusable, for a writer to remove.
//
// An authentic checkpoint (OpenCheckpoint checked its tag) proves s was
// fsynced through its end P: if s is shorter than P, or its bytes before P
// are not those the checkpoint was written for, or a scan finds a torn
// tail starting before P, durable data was lost and the answer is
// corruption (see segment.Checkpoint.Check), never a torn tail to
// truncate. Only for a reader (readOnly) is a segment shorter than P a
// state a live writer passes through — it appended and checkpointed after
// the reader took s.Size — when the file has grown to P since.
func scanNewest(fsys vfs.FS, s *segment.Segment, opts segment.ScanOptions, readOnly bool, log *slog.Logger) (*segment.Index, *segment.Tail, []string, error) {
	var drop []string
	var proven int64 // the end of the prefix an authentic checkpoint proves durable (0: none)
	ck, err := segment.OpenCheckpoint(fsys, s)
	switch {
	case err == nil:
		if !trustCheckpointBeyondDurable {
			if err = ck.Check(s); err != nil {
				ck.Close()
				switch {
				case ck.End > s.Size && readOnly && grownTo(s, ck.End):
					// A live writer checkpointed after the segment's size
					// was taken: not damage. Scan what was taken.
					log.Debug("evlog: recovery: checkpoint not used", "file", ck.Name, "err", err)
					return scanWhole(s, opts, 0, "", nil, nil)
				case ck.End > s.Size || !errors.Is(err, segment.ErrCorrupt):
					return nil, nil, nil, err
				}
				// The window differs: a scan may locate the damage.
				return scanWhole(s, opts, ck.End, ck.Name, err, nil)
			}
			proven = ck.End
		}
		if !opts.PrevTime.IsZero() && ck.Trailer.FirstTime < opts.PrevTime.UnixNano() {
			err = &segment.CheckpointError{File: ck.Name, Reason: "its first event precedes the previous segment's last"}
			ck.Close()
			break
		}
		o := opts
		o.Checkpoint = ck
		sr, serr := segment.Scan(s.File(), s.Header, s.Size, o)
		if serr == nil {
			s.AttachCheckpoint(ck)
			return sr.Index, sr.Tail, nil, nil
		}
		ck.Close()
		if !errors.Is(serr, segment.ErrCorrupt) {
			return nil, nil, nil, serr
		}
		// Damage in the checkpoint, or after it: the full scan decides
		// which (and reports the segment's own damage as it always did).
		err = &segment.CheckpointError{File: ck.Name, Reason: serr.Error()}
	case errors.Is(err, fs.ErrNotExist):
		err = nil
	}
	if err != nil {
		log.Warn("evlog: recovery: ignoring the active segment's checkpoint; scanning the segment instead", "file", segment.CheckpointName(s.Name), "err", err)
		drop = append(drop, segment.CheckpointName(s.Name))
	}
	return scanWhole(s, opts, proven, segment.CheckpointName(s.Name), nil, drop)
}

// scanWhole scans all of s, the newest segment, for scanNewest. proven is
// the end of the prefix an authentic checkpoint (named ckName) proves
// durable, 0 if none; mismatch, when not nil, is that checkpoint's window
// mismatch, the answer unless the scan locates the damage.
func scanWhole(s *segment.Segment, opts segment.ScanOptions, proven int64, ckName string, mismatch error, drop []string) (*segment.Index, *segment.Tail, []string, error) {
	sr, err := segment.Scan(s.File(), s.Header, s.Size, opts)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := provenLoss(s, sr, proven, ckName); err != nil {
		return nil, nil, nil, err
	}
	if mismatch != nil {
		return nil, nil, nil, mismatch
	}
	return sr.Index, sr.Tail, drop, nil
}

// provenLoss is the corruption a checkpoint named ckName proves when sr,
// a scan of all of s, found a torn tail starting before proven, the end
// of the prefix the checkpoint proves fsynced: damaged durable data, not
// a torn write. Nil when there is none.
func provenLoss(s *segment.Segment, sr segment.ScanResult, proven int64, ckName string) error {
	if sr.Tail == nil || sr.Tail.Offset >= proven {
		return nil
	}
	return &segment.CorruptError{File: s.Name, Offset: sr.Tail.Offset, Seq: sr.Index.LastSeq, Reason: fmt.Sprintf(
		"%s, but its checkpoint %s records that the segment had been fsynced through %d", sr.Tail.Reason, ckName, proven)}
}

// grownTo reports whether the file of s is now at least n bytes long: a
// reader took s.Size before a live writer appended through n.
func grownTo(s *segment.Segment, n int64) bool {
	size, err := s.CurrentSize()
	return err == nil && size >= n
}

// staleCheckpoints returns the checkpoint files of dir a writer removes at
// Open: temporaries, and checkpoints of any segment but active (the
// newest, unsealed segment's name; "" if none).
func staleCheckpoints(dir *segment.Dir, active string) []string {
	var out []string
	for _, name := range dir.Checkpoints {
		if seg, ok := segment.CheckpointSegment(name); ok && seg == active && active != "" {
			continue
		}
		out = append(out, name)
	}
	return out
}

// maybeCheckpoint writes a checkpoint of the active segment when
// checkpointInterval bytes of records were made durable since the last
// one (with final: when anything was). It runs right after an fsync: the
// checkpoint covers only what that fsync made durable. A write that fails
// for lack of space is skipped (the checkpoint is an optimisation); any
// other failure is returned.
//
// On an operating-system directory the interval's checkpoints (not final)
// are written in the background (startCheckpoint), while the writer goes
// on appending: encoding the index and writing the file took 4 to 7 ms
// of the group after which it fell due. The next call collects it, or
// waits for it when final (Close); a roll waits for it before sealing.
func (w *writer) maybeCheckpoint(final bool) error {
	if err := w.collectCheckpoint(final); err != nil {
		return err
	}
	if w.failed != nil || w.header.Version < 2 || w.idx.Count == 0 || w.ckptJob != nil {
		return nil
	}
	var p int64
	switch {
	case trustCheckpointBeyondDurable:
		p, final = w.end, true
	case w.durable == w.end:
		p = w.end // everything written is durable (marks included)
	case w.markEnd == w.end:
		p = w.idx.Durable // the file ends with the mark recording an fsync through p
	default:
		return nil
	}
	if p <= w.ckptEnd || !final && p-w.ckptEnd < w.opts.checkpointInterval() {
		return nil
	}
	if !final && w.ckptBackground {
		return w.checkpointErr(w.startCheckpoint(p))
	}
	return w.checkpointErr(w.writeCheckpoint(p, final))
}

// checkpointErr is the error a failed checkpoint write fails the writer
// with: none for lack of space, or a stranger under the name (the next
// Open scans more of the segment), err otherwise.
func (w *writer) checkpointErr(err error) error {
	if err != nil && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, vfs.ErrNotRegular)) {
		w.l.logger.Warn("evlog: could not write a checkpoint of the active segment; the next Open scans more of it", "file", w.name, "err", err)
		return nil
	}
	return err
}

// checkpointJob is an interval checkpoint being written in the background
// (startCheckpoint).
type checkpointJob struct {
	seg  string // the segment it indexes
	p    int64  // its prefix end
	run  func() // the work; started on its own goroutine, or, with checkpointDeferred, by collectCheckpoint
	done chan struct{}
	data []byte // the encoding (its storage is reused by the next job)
	err  error
}

// checkpointDeferred, set only by tests, runs a background checkpoint's
// work when the writer collects it (after a later group, before a roll,
// at Close) instead of on a goroutine: the order of file operations a
// background checkpoint may take, deterministic, for the crash loops over
// the in-memory file system (where checkpoints are otherwise written in
// line).
var checkpointDeferred = false

// startCheckpoint starts writing the checkpoint of the active segment's
// records before p in the background: the window's checksum, the encoding
// of a frozen copy of the index (segment.Index.Frozen: a map entry per
// stream, no posting copied) and the file (not fsynced into the
// directory, as an interval checkpoint never is). The job touches no
// writer state: the segment's bytes before p are durable and never
// change, the frozen index never sees later appends, and the writer
// waits for the job before it seals the segment or closes its file
// (collectCheckpoint).
func (w *writer) startCheckpoint(p int64) error {
	if err := w.materializeIndex(); err != nil {
		return err
	}
	j := &checkpointJob{seg: w.name, p: p, done: make(chan struct{})}
	f, fsys, h, hb, x, buf := w.f, w.l.fs, w.header, w.hdr, w.idx.Frozen(), w.ckptBuf
	w.ckptBuf, w.ckptJob = nil, j
	j.run = func() {
		defer close(j.done)
		crc, err := windowCRC(f, j.seg, p)
		if err != nil {
			j.err = err
			return
		}
		j.data = segment.AppendCheckpoint(buf, h, hb, x, p, crc)
		j.err = segment.WriteCheckpoint(fsys, j.seg, j.data, false)
	}
	if !checkpointDeferred {
		go j.run()
	}
	return nil
}

// collectCheckpoint collects the background checkpoint, if one was
// started: once it is done, or, with wait, once it is done after waiting
// for it. Its failure is returned as maybeCheckpoint returns one.
func (w *writer) collectCheckpoint(wait bool) error {
	j := w.ckptJob
	if j == nil {
		return nil
	}
	if checkpointDeferred {
		j.run()
	}
	if wait {
		<-j.done
	} else {
		select {
		case <-j.done:
		default:
			return nil
		}
	}
	w.ckptJob, w.ckptBuf = nil, j.data
	if j.err != nil {
		err := w.checkpointErr(j.err)
		if err != nil {
			w.syncBeforeFail()
		}
		return err
	}
	if j.seg == w.name {
		w.ckptEnd = max(w.ckptEnd, j.p)
	}
	return nil
}

// settleCheckpoint waits for the background checkpoint before the writer
// seals the active segment or closes its file. A failure fails the
// writer, unless it has failed already (Close then only waits).
func (w *writer) settleCheckpoint() {
	switch err := w.collectCheckpoint(true); {
	case err == nil:
	case w.failed == nil:
		w.fail(err)
	default: // the writer's own failure is what its calls report
		w.l.logger.Warn("evlog: the background checkpoint of the active segment failed too", "file", segment.CheckpointName(w.name), "err", err)
	}
}

// syncBeforeFail fsyncs and marks what was written since the background
// checkpoint began, before its failure stops the writer: under SyncNever
// and SyncInterval appends acknowledged meanwhile rely on a later fsync,
// and a stopped writer runs none (not even Close's), as checkDirSync
// does for a failed directory fsync. (A checkpoint written in line fails
// right after the fsync it follows, nothing acknowledged since.) It
// starts no checkpoint; an fsync or mark failure fails the writer.
func (w *writer) syncBeforeFail() {
	if w.failed == nil && w.end > w.durable {
		w.syncMarked()
	}
}

// materializeIndex reads in the checkpoint the active index still reads
// from (the one it was opened from), once, for this and every later
// checkpoint and the seal.
func (w *writer) materializeIndex() error {
	if w.idx.Base() == nil {
		return nil
	}
	full, err := w.idx.Materialize()
	if err != nil {
		return err
	}
	l := w.l
	l.mu.Lock()
	w.idx = full
	l.swapViewLocked(l.v.segs, full)
	l.mu.Unlock()
	return nil
}

// windowCRC returns the CRC32C of the bytes of f, the segment seg, that a
// checkpoint for its prefix before p records (CheckpointWindowStart).
func windowCRC(f vfs.File, seg string, p int64) (uint32, error) {
	start := segment.CheckpointWindowStart(p)
	window := make([]byte, p-start)
	if _, err := f.ReadAt(window, start); err != nil {
		return 0, fmt.Errorf("evlog: reading %s for its checkpoint: %w", seg, err)
	}
	return crc32.Checksum(window, crc32.MakeTable(crc32.Castagnoli)), nil
}

// writeCheckpoint writes the checkpoint of the active segment's records
// before p, every event of the index lying before p.
func (w *writer) writeCheckpoint(p int64, syncDir bool) error {
	if err := w.materializeIndex(); err != nil {
		return err
	}
	crc, err := windowCRC(w.f, w.name, p)
	if err != nil {
		return err
	}
	data := segment.AppendCheckpoint(w.footerBuf, w.header, w.hdr, w.idx, p, crc)
	w.footerBuf = data
	if err := segment.WriteCheckpoint(w.l.fs, w.name, data, syncDir); err != nil {
		return err
	}
	w.ckptEnd = p
	return nil
}

// dropCheckpoint removes the checkpoint of a segment that was just sealed
// (its trailer says all there is to say). A failure is only logged: a
// checkpoint of a sealed segment is never used, and the next writer's
// Open removes it.
func (w *writer) dropCheckpoint(segName string) {
	name := segment.CheckpointName(segName)
	if err := w.l.fs.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.l.logger.Warn("evlog: could not remove the checkpoint of a sealed segment", "file", name, "err", err)
	}
	w.ckptEnd = 0
}

// newestBlank reports whether s, the newest segment, holds neither a
// committed event nor a mark: whether nothing in it proves that the
// segment before it was sealed durably — without scanning it when a
// checkpoint proves it held an event (see checkpointProvesEvent).
func newestBlank(fsys vfs.FS, s *segment.Segment, readOnly bool) bool {
	if checkpointProvesEvent(fsys, s, readOnly) {
		return false
	}
	sr, err := segment.Scan(s.File(), s.Header, s.Size, segment.ScanOptions{File: s.Name})
	return err == nil && sr.Index.Count == 0 && !sr.Index.Marked
}

// checkpointProvesEvent reports whether s has an authentic checkpoint: one
// indexes at least one event its writer fsynced (whether s still holds it
// is scanNewest's question). A reader (readOnly) beside a live writer does
// not count one written after it took s.Size (its end beyond it, the file
// grown to it since): the reader's view of the segments before s may
// predate that event (taken before the roll that sealed the previous one).
func checkpointProvesEvent(fsys vfs.FS, s *segment.Segment, readOnly bool) bool {
	ck, err := segment.OpenCheckpoint(fsys, s)
	if err != nil {
		return false
	}
	defer ck.Close()
	return !readOnly || ck.End <= s.Size || !grownTo(s, ck.End)
}

// verifyCheckpoint checks the checkpoint of s, the newest segment, against
// sr, a scan of the whole segment that found no corruption. It returns
// whether sr's torn tail (if any) is one, and the corruption to report.
// A checkpoint Open would not use (absent, damaged, stale) is no finding:
// Open scans instead, and a writer removes it. An authentic one whose
// segment no longer holds what it proves durable is corruption of the
// segment, as Open reports it (scanNewest; the torn tail then is part of
// it); one that Open would use and that disagrees with the segment is
// corruption of the checkpoint: remove it.
func verifyCheckpoint(fsys vfs.FS, s *segment.Segment, sr segment.ScanResult) (torn bool, _ error) {
	torn = sr.Tail != nil
	ck, err := segment.OpenCheckpoint(fsys, s)
	if err != nil {
		return torn, nil
	}
	defer ck.Close()
	if err := ck.Check(s); err != nil {
		switch {
		case ck.End > s.Size && grownTo(s, ck.End):
			return torn, nil // checkpointed by a live writer after the scan took the size
		case ck.End > s.Size || !errors.Is(err, segment.ErrCorrupt):
			return false, err
		}
		if loss := provenLoss(s, sr, ck.End, ck.Name); loss != nil {
			return false, loss
		}
		return torn, err
	}
	if loss := provenLoss(s, sr, ck.End, ck.Name); loss != nil {
		return false, loss
	}
	bad := func(why string) error {
		return &segment.CorruptError{File: ck.Name, Reason: "the checkpoint disagrees with " + s.Name + " (" + why + "): remove it (Open then scans the segment)"}
	}
	pr, err := segment.Scan(s.File(), s.Header, ck.End, segment.ScanOptions{File: s.Name, Strict: true})
	if err != nil {
		if errors.Is(err, segment.ErrCorrupt) {
			return torn, bad(err.Error())
		}
		return torn, err
	}
	want := pr.Index
	got, err := segment.NewIndexFrom(ck).Materialize()
	if err != nil {
		return torn, err
	}
	if why := segment.IndexDiff(want, got); why != "" {
		return torn, bad(why)
	}
	return torn, nil
}
