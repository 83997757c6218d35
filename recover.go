package evlog

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// RecoveryReport says what Open found and did. A writer repairs; a
// read-only open only reports (it never modifies anything).
type RecoveryReport struct {
	// TornTail, when not nil, is the invalid suffix of the newest segment:
	// an incomplete batch or torn frame that no mark or checkpoint records
	// as durable (either makes it corruption instead). A
	// writer truncated it. Not recorded as durable is not the same as never
	// acknowledged: under SyncNever and SyncInterval appends are
	// acknowledged before their fsync, and a power loss can take the mark
	// recording the last fsync (see the package documentation).
	// TornTail.Durable is the durable end the last mark before it records.
	TornTail *segment.Tail
	// TornFile is the segment holding TornTail.
	TornFile string
	// Removed lists files the writer deleted: temporaries, an empty newest
	// segment left by a crash during a roll, a newest segment whose header
	// never became durable (after an unsealed segment only), and segments
	// superseded by a compaction. Nothing is removed unless the whole
	// directory passed recovery's checks.
	Removed []string
	// Strangers lists entries named like log files that are not regular
	// files (symbolic links, FIFOs, devices, directories): not part of the
	// log, never opened and never deleted.
	Strangers []string
}

// recovered is the state Open builds from the directory.
type recovered struct {
	logID  segment.LogID
	segs   []*segment.Segment // live segments in log order
	active *segment.Index     // index of the newest, unsealed segment (nil if none)
	// needSuccessor is set when the newest live segment is sealed and a
	// new active segment must be created after it (a writer), or exists
	// but was listed too late (a reader: see successorListed).
	needSuccessor bool
	report        RecoveryReport
}

// recoverDir opens the segments of fsys and applies the recovery rules of
// docs/FORMAT.md ("Recovery"). With readOnly it modifies nothing. A writer
// validates the whole directory before it deletes anything: removals are
// collected and carried out only once every check has passed.
func recoverDir(fsys vfs.FS, log *slog.Logger, readOnly bool) (*recovered, error) {
	dir, err := segment.ReadDir(fsys)
	if err != nil {
		return nil, fmt.Errorf("evlog: %w", err)
	}
	return recoverListed(fsys, dir, log, readOnly)
}

// recoverListed is recoverDir from dir, a listing of fsys just taken.
func recoverListed(fsys vfs.FS, dir *segment.Dir, log *slog.Logger, readOnly bool) (_ *recovered, err error) {
	if err := restoreMarked(dir.Other); err != nil {
		return nil, err
	}
	rec := &recovered{}
	for _, e := range dir.Strangers {
		log.Warn("evlog: recovery: ignoring a file that is not a regular file", "file", e.Name, "type", vfs.TypeName(e.Mode))
		rec.report.Strangers = append(rec.report.Strangers, e.Name)
	}
	files, err := segment.OpenSegments(fsys, dir.Segments)
	if err != nil {
		return nil, fmt.Errorf("evlog: recovery: %w", err)
	}
	defer func() {
		if err != nil {
			segment.CloseSegments(files)
		}
	}()
	type removal struct{ name, why string }
	var pending []removal
	remove := func(name, why string) error {
		if !readOnly {
			pending = append(pending, removal{name, why})
		}
		return nil
	}
	removedAny := false
	for _, name := range dir.Temps {
		if err := remove(name, "temporary left by an interrupted write"); err != nil {
			return nil, err
		}
		removedAny = !readOnly
	}

	// A newest segment no longer than its header and without a valid one
	// is a torn creation, removed — only where a crash could have left it
	// holding no event: during a roll, before the segment before it was
	// sealed. A segment is created durably (header fsynced, renamed,
	// directory fsynced) before the previous one is sealed, and no event
	// goes into it before that seal; so after a sealed segment, or as the
	// only segment, it may have held acknowledged events and is
	// corruption. (Only a file system that does not honour fsync before
	// rename can tear a creation at all.) A longer file with a bad header
	// is corruption too.
	removedTorn := false
	if n := len(files); n > 0 && files[n-1].Err != nil {
		f := files[n-1]
		if size, serr := fsys.Stat(f.Name); serr == nil && size <= segment.HeaderSize {
			if n < 2 || files[n-2].Seg == nil || files[n-2].Seg.Sealed {
				why := f.Err.Error()
				if ce, ok := errors.AsType[*segment.CorruptError](f.Err); ok {
					why = ce.Reason
				}
				f.Err = &segment.CorruptError{File: f.Name, Reason: fmt.Sprintf(
					"%s; only a crash during a roll, before the previous segment was sealed, could leave that, and events in it may have been acknowledged: restore it from a backup, or remove it if you know it held no event", why)}
			} else {
				log.Warn("evlog: recovery: newest segment has no valid header", "file", f.Name, "err", f.Err)
				if err := remove(f.Name, "newest segment without a valid header (torn creation)"); err != nil {
					return nil, err
				}
				files = files[:n-1]
				removedTorn, removedAny = true, removedAny || !readOnly
			}
		}
	}

	// The directory rules (segment.Resolve): headers agree with names,
	// one log ID, generations superseded by a compaction wholly covered.
	live, superseded, problems := segment.Resolve(files)
	if len(problems) > 0 {
		return nil, problems[0]
	}
	for _, f := range live {
		if f.Err != nil {
			return nil, f.Err
		}
	}
	for _, f := range superseded {
		if err := remove(f.Name, "superseded by compacted segment "+f.By.Name); err != nil {
			return nil, err
		}
		removedAny = removedAny || !readOnly
	}

	// A roll creates segment N+1 durably, then seals N (footer, trailer,
	// fsync), and only then puts events into N+1. A crash before the
	// seal's fsync completed can leave N's trailer on disk without all of
	// the footer (or records) before it: the disk keeps unsynced sectors
	// in any order. So while N+1 holds no committed event, N's seal is not
	// proven — unless N+1 holds a mark, written after the seal's fsync
	// returned (the writer marks an N+1 it leaves empty: markEmpty): verify N; if it does
	// not verify, its seal was torn, and N is read as unsealed (damage in
	// it is then corruption or a torn tail by the marks, as for any newest
	// segment). Rare: only a crash between a roll and the first append
	// after it leaves an unmarked, empty newest segment; trusting a mark
	// instead keeps damage in a cleanly closed log's sealed segment from
	// being taken for a torn seal and truncated.
	tornSeal := "" // the segment whose seal was torn, read as unsealed
	if n := len(live); n >= 2 && live[n-2].Seg.Sealed && !live[n-1].Seg.Sealed &&
		live[n-2].Seg.Header.Generation == 0 && live[n-2].Seg.Header.Flags&segment.FlagCompressed == 0 {
		nf, prev := live[n-1], live[n-2]
		if newestBlank(fsys, nf.Seg, readOnly) {
			if _, verr := segment.Verify(prev.Seg, math.MinInt64); verr != nil {
				if !errors.Is(verr, segment.ErrCorrupt) {
					return nil, verr
				}
				log.Warn("evlog: recovery: the seal of the segment before an empty newest one does not verify: a crash tore it; reading it as unsealed", "file", prev.Name, "err", verr)
				prev.Seg.TornSeal()
				tornSeal = prev.Name
			}
		}
	}
	// A crash during a roll (the new segment created, the old one not yet
	// sealed) leaves an unsealed second-newest segment and a newest one
	// holding no committed event: drop the newest, continue the old one.
	// Not when the newest holds a mark: one is written there only once
	// the old segment's seal was fsynced, so an unsealed old segment was
	// damaged after it was durable (its trailer, and perhaps records
	// before it), which is corruption, never a torn tail to truncate.
	if n := len(live); n >= 2 && !live[n-2].Seg.Sealed && !live[n-1].Seg.Sealed {
		nf := live[n-1]
		if newestBlank(fsys, nf.Seg, readOnly) {
			nf.Close()
			if err := remove(nf.Name, "empty newest segment left by a crash during a roll"); err != nil {
				return nil, err
			}
			removedAny = removedAny || !readOnly
			live = live[:n-1]
		}
	}
	// The log starts at seq 1: a first segment starting later means the
	// segments before it are missing.
	if len(live) > 0 && live[0].BaseSeq != 1 {
		return nil, &segment.CorruptError{File: live[0].Name, Reason: fmt.Sprintf("the first segment starts at seq %d: the segments before it are missing", live[0].BaseSeq)}
	}
	// Every segment but the newest is sealed, and the seqs are contiguous.
	prevTime := int64(math.MinInt64)
	for i := 0; i < len(live)-1; i++ {
		f, s := live[i], live[i].Seg
		if !s.Sealed {
			return nil, &segment.CorruptError{File: f.Name, Offset: s.Size, Reason: "segment is not the newest but is not sealed (it ends without a valid trailer)"}
		}
		if n := live[i+1].BaseSeq; n != s.Trailer.LastSeq+1 {
			return nil, &segment.CorruptError{File: live[i+1].Name, Reason: fmt.Sprintf("first seq %d does not follow %s's last seq %d (a segment is missing)", n, f.Name, s.Trailer.LastSeq)}
		}
		if s.Trailer.Count > 0 {
			if s.Trailer.FirstTime < prevTime {
				return nil, &segment.CorruptError{File: f.Name, Offset: s.Size - segment.TrailerSize, Reason: "first recorded time precedes the previous segment's last"}
			}
			prevTime = s.Trailer.LastTime
		}
	}
	activeName := ""
	if n := len(live); n > 0 {
		f, s := live[n-1], live[n-1].Seg
		switch {
		case s.Sealed && !removedTorn && !(readOnly && successorListed(fsys, s.Trailer.LastSeq+1)):
			return nil, &segment.CorruptError{File: f.Name, Offset: s.Size - segment.TrailerSize,
				Reason: "the newest segment is sealed but no segment follows it (was the newest segment deleted?)"}
		case s.Sealed:
			// A torn successor removed, or, for a reader, one a roll
			// created after dir was listed: the log (as far as this
			// listing serves it) ends with the sealed segment.
			rec.needSuccessor = true
		default:
			opts := segment.ScanOptions{File: f.Name, PrevTime: time.Unix(0, prevTime)}
			idx, tail, bad, err := scanNewest(fsys, s, opts, readOnly, log)
			if err != nil {
				return nil, err
			}
			activeName = f.Name
			for _, name := range bad {
				if slices.Contains(dir.Checkpoints, name) { // a regular file, never a stranger
					remove(name, "checkpoint not usable (the segment was scanned instead)")
					removedAny = removedAny || !readOnly
				}
			}
			if _, copied := fsys.(interface{ completeCopy() }); readOnly && !copied {
				// A reader beside a writer serves only what is durable
				// (a finished copy, as in a backup, is durable whole).
				d, err := durablePrefix(s, f.Name, segment.ScanResult{Index: idx}, opts)
				if err != nil {
					return nil, err
				}
				idx = d.Index
			}
			rec.active = idx
			if tail != nil {
				rec.report.TornTail, rec.report.TornFile = tail, f.Name
			}
		}
	}
	// Checkpoints of any other segment are never used again, and
	// temporaries never were.
	for _, name := range staleCheckpoints(dir, activeName) {
		if !slices.ContainsFunc(pending, func(r removal) bool { return r.name == name }) {
			remove(name, "checkpoint of a segment that is no longer the active one, or its temporary")
			removedAny = removedAny || !readOnly
		}
	}
	// The whole directory is valid: only now delete anything, and a
	// superseded segment only once the segment covering it verifies.
	if len(superseded) > 0 && !readOnly {
		if err := segment.CheckSuperseding(superseded); err != nil {
			return nil, err
		}
	}
	segment.CloseSegments(superseded)
	// A torn seal is undone before the empty segment after it is removed:
	// removed first, a crash before openActive truncated the torn seal
	// would leave a sealed newest segment with no successor, which the
	// next Open refuses as a deleted newest segment. Truncated and fsynced
	// first, a crash leaves an unsealed segment and the empty one after
	// it, which the next Open repairs again.
	if tornSeal != "" && tornSeal == activeName && rec.report.TornTail != nil && !readOnly {
		if err := truncateDurably(fsys, tornSeal, rec.active.End); err != nil {
			return nil, fmt.Errorf("evlog: recovery: truncating the torn seal of %s: %w", tornSeal, err)
		}
	}
	for _, r := range pending {
		if err := fsys.Remove(r.name); err != nil && slices.Contains(dir.Checkpoints, r.name) {
			// Never required, and never used unless it proves itself.
			log.Warn("evlog: recovery: could not remove a checkpoint", "file", r.name, "reason", r.why, "err", err)
			continue
		} else if err != nil {
			return nil, fmt.Errorf("evlog: recovery: removing %s: %w", r.name, err)
		}
		log.Warn("evlog: recovery removed a file", "file", r.name, "reason", r.why)
		rec.report.Removed = append(rec.report.Removed, r.name)
	}
	if removedAny {
		if err := fsys.SyncDir(); err != nil {
			return nil, fmt.Errorf("evlog: recovery: syncing the directory: %w", err)
		}
	}
	for _, f := range live {
		rec.segs = append(rec.segs, f.Seg)
	}
	files = nil // ownership moves to rec
	if len(live) > 0 {
		rec.logID = live[0].Seg.Header.LogID
	}
	return rec, nil
}

// successorListed reports whether a listing of fsys taken now holds a
// segment starting at seq next. A reader that listed the directory just
// before a roll created segment N+1, and opened N after the roll sealed it,
// finds N sealed with no successor: every roll passes through that state
// (it creates N+1 durably, then seals N), so the reader serves the log
// through N instead of calling it damage — once a fresh listing shows that
// N+1 exists. (Retrying the whole open instead can fail for good beside a
// writer that rolls faster than the reader reads.)
//
// A finished copy (a backup read through its manifest, which says which
// segments it holds) has every successor it will ever have: one taken by
// a reader that met a roll ends with a sealed segment, which is its end,
// not damage.
func successorListed(fsys vfs.FS, next uint64) bool {
	if _, copied := fsys.(interface{ completeCopy() }); copied {
		return true
	}
	d, err := segment.ReadDir(fsys)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(d.Segments, func(f segment.DirFile) bool { return f.BaseSeq == next })
}

// truncateDurably truncates name to size and fsyncs it.
func truncateDurably(fsys vfs.FS, name string, size int64) error {
	f, err := fsys.OpenReadWrite(name)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}
