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
// scanned in full.

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
func scanNewest(fsys vfs.FS, s *segment.Segment, opts segment.ScanOptions, readOnly bool, log *slog.Logger) (*segment.Index, *segment.Tail, []string, error) {
	var drop []string
	ck, err := segment.OpenCheckpoint(fsys, s)
	switch {
	case err == nil:
		if !trustCheckpointBeyondDurable {
			if err = ck.Check(s); err != nil {
				ck.Close()
				break
			}
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
		if ce, ok := errors.AsType[*segment.CheckpointError](err); ok && ce.Racing && readOnly {
			// A live writer checkpointed after the segment's size was
			// taken: a state it passes through, not damage.
			log.Debug("evlog: recovery: checkpoint not used", "file", ce.File, "err", err)
		} else {
			log.Warn("evlog: recovery: ignoring the active segment's checkpoint; scanning the segment instead", "file", segment.CheckpointName(s.Name), "err", err)
		}
		drop = append(drop, segment.CheckpointName(s.Name))
	}
	sr, err := segment.Scan(s.File(), s.Header, s.Size, opts)
	return sr.Index, sr.Tail, drop, err
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
func (w *writer) maybeCheckpoint(final bool) error {
	if w.failed != nil || w.header.Version < 2 || w.idx.Count == 0 {
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
	err := w.writeCheckpoint(p, final)
	if err != nil && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, vfs.ErrNotRegular)) {
		w.l.logger.Warn("evlog: could not write a checkpoint of the active segment; the next Open scans more of it", "file", w.name, "err", err)
		return nil
	}
	return err
}

// writeCheckpoint writes the checkpoint of the active segment's records
// before p, every event of the index lying before p.
func (w *writer) writeCheckpoint(p int64, syncDir bool) error {
	if w.idx.Base() != nil {
		// The index still reads the checkpoint it was opened from: read
		// it in once, for this and every later checkpoint and the seal.
		full, err := w.idx.Materialize()
		if err != nil {
			return err
		}
		l := w.l
		l.mu.Lock()
		w.idx = full
		l.swapViewLocked(l.v.segs, full)
		l.mu.Unlock()
	}
	start := segment.CheckpointWindowStart(p)
	window := make([]byte, p-start)
	if _, err := w.f.ReadAt(window, start); err != nil {
		return fmt.Errorf("evlog: reading %s for its checkpoint: %w", w.name, err)
	}
	data := segment.AppendCheckpoint(w.footerBuf, w.header, w.hdr, w.idx, p, crc32.Checksum(window, crc32.MakeTable(crc32.Castagnoli)))
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

// newestEmpty reports whether s, the newest segment, holds no committed
// event — without scanning it when a checkpoint proves it does.
func newestEmpty(fsys vfs.FS, s *segment.Segment) bool {
	if ck, err := segment.OpenCheckpoint(fsys, s); err == nil {
		ok := ck.Check(s) == nil
		ck.Close()
		if ok {
			return false // a checkpoint indexes at least one event
		}
	}
	sr, err := segment.Scan(s.File(), s.Header, s.Size, segment.ScanOptions{File: s.Name})
	return err == nil && sr.Index.Count == 0
}

// newestBlank reports whether s, the newest segment, holds neither a
// committed event nor a mark: whether nothing in it proves that the
// segment before it was sealed durably (see newestEmpty).
func newestBlank(fsys vfs.FS, s *segment.Segment) bool {
	if ck, err := segment.OpenCheckpoint(fsys, s); err == nil {
		ok := ck.Check(s) == nil
		ck.Close()
		if ok {
			return false // a checkpoint indexes at least one event
		}
	}
	sr, err := segment.Scan(s.File(), s.Header, s.Size, segment.ScanOptions{File: s.Name})
	return err == nil && sr.Index.Count == 0 && !sr.Index.Marked
}

// verifyCheckpoint checks the checkpoint of s, the newest segment, against
// a scan of the records it indexes. One that Open would not use (absent,
// damaged, stale) is no finding: Open scans instead, and a writer removes
// it. One that Open would use and that disagrees with the segment is
// corruption: remove it.
func verifyCheckpoint(fsys vfs.FS, s *segment.Segment) error {
	ck, err := segment.OpenCheckpoint(fsys, s)
	if err != nil {
		return nil
	}
	defer ck.Close()
	if ck.Check(s) != nil {
		return nil
	}
	bad := func(why string) error {
		return &segment.CorruptError{File: ck.Name, Reason: "the checkpoint disagrees with " + s.Name + " (" + why + "): remove it (Open then scans the segment)"}
	}
	sr, err := segment.Scan(s.File(), s.Header, ck.End, segment.ScanOptions{File: s.Name, Strict: true})
	if err != nil {
		if errors.Is(err, segment.ErrCorrupt) {
			return bad(err.Error())
		}
		return err
	}
	want := sr.Index
	got, err := segment.NewIndexFrom(ck).Materialize()
	if err != nil {
		return err
	}
	if why := segment.IndexDiff(want, got); why != "" {
		return bad(why)
	}
	return nil
}
