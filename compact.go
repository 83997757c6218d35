package evlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"strings"
	"time"

	"github.com/evlog/evlog/segment"
)

// CompactOptions configure Compact.
type CompactOptions struct {
	// TargetSize bounds the size of a merged segment: runs of adjacent
	// sealed segments are merged while their total stays at or below it
	// (a compressed segment counting as the bytes it takes on disk).
	// Zero means Options.SegmentSize. Whatever the target, a run is also
	// cut before its output would pass a bound of the format (one
	// stream's postings, the summary, the zmap, 2^32-1 events; see
	// segment.Extent and docs/FORMAT.md, "Bounds of a segment"), which
	// readers would refuse.
	TargetSize int64
	// Compress rewrites sealed segments with their records in
	// independently zstd-compressed blocks (reads, indexes and stream
	// look-ups stay transparent).
	Compress bool
	// DryRun computes and returns the plan without writing anything. It
	// is the one compaction a log opened with OpenReadOnly runs (beside a
	// writer too: the plan is then that of the sealed segments it sees).
	DryRun bool
	// Progress, if set, is called with the input bytes processed so far
	// and the total.
	Progress func(done, total int64)
	// Committed, if set, is called with each group once it is committed
	// (its output durably in place, Committed set), in Compact's
	// goroutine, before the next group starts.
	Committed func(CompactGroup)
}

// CompactGroup is one output segment of a compaction and its inputs.
type CompactGroup struct {
	Inputs []string
	Output string
	Bytes  int64 // input bytes
	// Redact is set when the group rewrites events that read as gone
	// (deleted, truncated, beyond retention) as placeholders without
	// payload (see Log.DeleteStream).
	Redact bool
	// Committed is set once Output is durably in place (the inputs may
	// still be present if removing them failed; recovery drops them). An
	// interrupted Compact reports which groups it had committed.
	Committed bool
	// LeftOut, when not nil, says why the group was not written: its
	// output would pass a bound of the format (a *CompactLeftOutError
	// matching segment.ErrTooLarge, naming the inputs and what to do).
	// Its inputs stay as they are and Compact goes on with the next
	// group. It is never set with DryRun: only writing the output tells.
	LeftOut error
}

// CompactLeftOutError is the LeftOut of a CompactGroup: the rewrite of
// Inputs (with Redact, the redaction of a segment written before the
// bounds were enforced, whose placeholders are larger than the events
// they replace) would pass a bound of the format that readers enforce, so
// it was discarded before it replaced anything. Compaction never splits a
// segment (see docs/FORMAT.md, "Bounds of a segment"), so every later
// compaction leaves the same group out; the rest of the log is compacted
// as usual.
type CompactLeftOutError struct {
	Inputs []string
	Redact bool
	Err    error // matches segment.ErrTooLarge
}

func (e *CompactLeftOutError) Error() string {
	what := "rewriting it"
	next := "it reads as it is and needs nothing"
	if e.Redact {
		what = "rewriting its events that read as gone as placeholders"
		next = "no reader returns those events, but their payloads stay on the disk; to remove them, copy the log without them with `evlogctl salvage DIR NEWDIR` (seqs and versions renumbered)"
	}
	return fmt.Sprintf("evlog: compact: left %s as it is: %s would pass a bound of the format (%v), and compaction never splits a segment; %s",
		strings.Join(e.Inputs, " "), what, e.Err, next)
}

func (e *CompactLeftOutError) Unwrap() error { return e.Err }

// CompactReport says what Compact did (or, with DryRun, would do).
type CompactReport struct {
	SegmentsBefore, SegmentsAfter int
	BytesBefore, BytesAfter       int64
	Groups                        []CompactGroup
}

// Compact merges runs of small sealed segments into larger ones (and, with
// Compress, compresses them), beside concurrent appends and reads. Only
// sealed segments are touched; events, seqs, versions and times are
// unchanged, so every read returns exactly what it returned before.
//
// Events that read as gone (DeleteStream, TruncateStream, TombstoneStream,
// Options.Retention) when Compact starts are removed physically: every
// sealed segment holding one is rewritten (alone if it has no neighbour
// to merge with; a compressed one stays compressed) with each gone event
// replaced by a placeholder of the same seq, stream, version, time and ID,
// type TypeRedacted and no Meta or Data, which no reader ever yields
// (see docs/FORMAT.md, "Deletion and retention"). Events in the active
// segment are removed by the first Compact after it is sealed. Before
// redacting, Compact makes every append so far durable (Sync), so that a
// crash never keeps a redaction and loses the marker (or, for MaxCount,
// the newer versions) that made the events gone.
//
// Each output segment is written to a temporary file, fsynced, verified
// completely and checked against its inputs (first and last seq, event
// count), renamed into place without replacing any existing file (the
// commit point), the directory fsynced, and only then are its inputs
// removed; recovery drops inputs a crash left
// behind (a higher generation covers them). When that directory fsync
// fails, whether the rename is durable is unknown: the output is removed
// again and the inputs kept, Compact fails (the group not Committed), and
// a Compact after the log is reopened redoes the group. Killed at any
// instant, the log reads the same afterwards, and running Compact again
// completes the job.
//
// Once any directory fsync of the log directory failed in this process
// (the writer's, a compaction's, a subscription's, a snapshot Save's:
// they share the directory), that fsync and every later one proves
// nothing durable (fsyncgate; see ErrDirSyncFailed): Compact then
// refuses before rewriting anything, with an error matching
// ErrDirSyncFailed and the failure's cause, and a Compact under way
// keeps the inputs of the group whose directory fsync fails (as above).
// Check the disk, then restart the machine or remount the file system
// before reopening the log and compacting again.
// Corruption in an input aborts the compaction with an ErrCorrupt error
// and changes nothing.
//
// A group whose output would pass a bound of the format (a segment
// appended or compacted before the writer and compaction kept to the
// bounds, whose redaction makes it grow) is left out: its temporary file
// is discarded before it replaces anything, the group's LeftOut says why
// (a *CompactLeftOutError matching segment.ErrTooLarge), and Compact goes
// on with the next group and returns no error for it. Such a group is
// planned, and left out, at every compaction: finding it costs a rewrite
// of its input that is then discarded.
//
// Cancelling ctx, or closing the Log (which waits for Compact to return),
// stops it between input segments; the error is ctx's cause or matches
// ErrClosed, and the report's groups say which were already committed.
func (l *Log) Compact(ctx context.Context, o CompactOptions) (CompactReport, error) {
	if l.readOnly && !o.DryRun {
		return CompactReport{}, ErrReadOnly
	}
	if o.TargetSize == 0 {
		o.TargetSize = l.opts.SegmentSize
	}
	if o.TargetSize < MinSegmentSize {
		return CompactReport{}, fmt.Errorf("%w: compaction target size %d is below the minimum segment size %d", ErrInvalid, o.TargetSize, MinSegmentSize)
	}
	if !o.DryRun {
		// It removes inputs on the word of outputs whose entries only a
		// directory fsync makes durable, which proves nothing after a
		// failed one (dirsync.go).
		if err := l.dirSyncFailure(); err != nil {
			return CompactReport{}, fmt.Errorf("evlog: compact: nothing was rewritten: %w", err)
		}
	}
	l.compactMu.Lock()
	defer l.compactMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return CompactReport{}, ErrClosed
	}
	l.compactions.Add(1) // Close waits for it
	l.mu.Unlock()
	defer l.compactions.Done()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(l.closeCtx, func() { cancel(errCompactClosed) })()
	v, pub, err := l.acquire()
	if err != nil {
		return CompactReport{}, err
	}
	defer v.unref()
	vis, err := l.newVisibility(ctx, v, pub) // deletion.go, deletion_compact.go
	if err != nil {
		return CompactReport{}, err
	}
	if !o.DryRun && (len(vis.t.m) > 0 || len(vis.ret) > 0) {
		// Redaction goes by the markers and stream versions published at
		// pub, which under SyncNever and SyncInterval may not be durable
		// yet: make them durable first, so that a crash never leaves
		// durable events redacted and what made them gone lost.
		if err := l.Sync(ctx); err != nil {
			return CompactReport{}, fmt.Errorf("evlog: compact: making the deletions it acts on durable (nothing was rewritten): %w", err)
		}
	}
	redact := make(map[*segHandle]bool)

	var rep CompactReport
	rep.SegmentsBefore = len(v.segs)
	for _, s := range v.segs {
		rep.BytesBefore += s.Size
	}
	var runs [][]*segHandle
	var runCompress []bool
	var run []*segHandle
	var runBytes int64
	var runExt segment.Extent // bounds the run's output (segment/bounds.go)
	flush := func() {
		if len(run) > 1 || len(run) == 1 && (o.Compress && run[0].Header.Flags&segment.FlagCompressed == 0 || redact[run[0]]) {
			runs, runCompress = append(runs, run), append(runCompress, o.Compress)
		}
		run, runBytes, runExt = nil, 0, segment.Extent{}
	}
	for _, s := range v.segs {
		if !s.Sealed {
			break // the active segment is never compacted
		}
		// Recovery refuses such segments; never compact one (its output
		// could be named like it and replace it).
		if base, gen, ok := segment.ParseFileName(s.Name); !ok || base != s.FirstSeq() || gen != s.Header.Generation {
			return rep, &segment.CorruptError{File: s.Name, Reason: fmt.Sprintf("the header says first seq %d, generation %d, which the name disagrees with", s.FirstSeq(), s.Header.Generation)}
		}
		red, err := vis.needsRedaction(ctx, s)
		if err != nil {
			return rep, err
		}
		redact[s] = red
		if s.Header.Flags&segment.FlagCompressed != 0 && !o.Compress {
			flush() // without Compress, compressed segments stay as they are
			if red {
				// … unless they hold gone events: rewritten alone, compressed.
				runs, runCompress = append(runs, []*segHandle{s}), append(runCompress, true)
			}
			continue
		}
		size := s.Size // compressed inputs count as what they take on disk
		// TargetSize bounds the bytes on disk, not what the output holds:
		// compressed inputs hold many times their size. Cut the output too
		// before any per-segment structure would pass what readers accept
		// (a stream's postings, the summary, the zmap, the event count),
		// whatever the compression ratio. (A segment alone fits unless
		// it predates the bounds and its redaction makes it grow: then
		// its output fails to seal with segment.ErrTooLarge and the
		// group is left out.)
		ext, err := s.Extent()
		if err != nil {
			return rep, err
		}
		if red {
			ext = redactedExtent(ext)
		}
		if runBytes+size > o.TargetSize || len(run) > 0 && !redactable(runExt.Merge(ext), o.Compress) {
			flush()
		}
		if len(run) == 0 {
			runExt = ext
		} else {
			runExt = runExt.Merge(ext)
		}
		run = append(run, s)
		runBytes += size
	}
	flush()
	var total int64
	for _, r := range runs {
		g := CompactGroup{Output: segment.FormatFileName(r[0].FirstSeq(), maxGen(r)+1)}
		for _, s := range r {
			g.Inputs = append(g.Inputs, s.Name)
			g.Bytes += s.Size
			g.Redact = g.Redact || redact[s]
		}
		total += g.Bytes
		rep.Groups = append(rep.Groups, g)
	}
	if o.DryRun || len(runs) == 0 {
		rep.SegmentsAfter, rep.BytesAfter = rep.SegmentsBefore, rep.BytesBefore
		return rep, nil
	}
	var done int64
	for i, r := range runs {
		if ctx.Err() != nil {
			return rep, context.Cause(ctx)
		}
		committed, err := l.compactRun(ctx, r, rep.Groups[i].Output, runCompress[i], vis, redact, func(n int64) {
			if o.Progress != nil {
				o.Progress(done+n, total)
			}
		})
		if !committed && errors.Is(err, segment.ErrTooLarge) {
			rep.Groups[i].LeftOut = &CompactLeftOutError{Inputs: rep.Groups[i].Inputs, Redact: rep.Groups[i].Redact, Err: err}
			done += rep.Groups[i].Bytes
			continue
		}
		rep.Groups[i].Committed = committed
		if committed && o.Committed != nil {
			o.Committed(rep.Groups[i])
		}
		if err != nil {
			return rep, err
		}
		done += rep.Groups[i].Bytes
	}
	segs, err := l.Segments()
	if err != nil {
		return rep, err
	}
	rep.SegmentsAfter = len(segs)
	for _, s := range segs {
		rep.BytesAfter += s.Bytes
	}
	return rep, nil
}

// checkCompacted checks a compaction's output s against its run before
// anything is removed: the header it was written with (log ID, first seq,
// generation), sealed, and a trailer whose last seq and count are the
// run's.
func checkCompacted(s *segment.Segment, h segment.Header, run []*segHandle) error {
	var count uint64
	for _, in := range run {
		count += uint64(in.Trailer.Count)
	}
	last := run[len(run)-1].Trailer.LastSeq
	switch {
	case s.Header.LogID != h.LogID || s.Header.BaseSeq != h.BaseSeq || s.Header.Generation != h.Generation:
		return fmt.Errorf("evlog: compact: %s: header (first seq %d, generation %d) is not the one written (first seq %d, generation %d); nothing was removed",
			s.Name, s.Header.BaseSeq, s.Header.Generation, h.BaseSeq, h.Generation)
	case !s.Sealed:
		return fmt.Errorf("evlog: compact: %s is not sealed; nothing was removed", s.Name)
	case s.Trailer.LastSeq != last || uint64(s.Trailer.Count) != count:
		return fmt.Errorf("evlog: compact: %s holds %d events %d..%d, its inputs %d events %d..%d; nothing was removed",
			s.Name, s.Trailer.Count, s.Header.BaseSeq, s.Trailer.LastSeq, count, run[0].FirstSeq(), last)
	}
	return nil
}

// redactedExtent bounds the extent of a segment of extent e once its gone
// events are rewritten as placeholders: a placeholder keeps its event's
// seq, stream, version, time and ID, drops its Meta and Data, and has type
// TypeRedacted, so it is at most len(TypeRedacted) bytes longer; its
// length and every delta spanning it (grown by less than half) gain at
// most one uvarint byte each. A postings frame holds at most one entry
// per byte, so it at most doubles.
func redactedExtent(e segment.Extent) segment.Extent {
	e.Records += int64(e.Events) * int64(len(TypeRedacted))
	e.Postings = min(e.Postings+2*int64(e.Events), 2*e.Postings)
	return e
}

// redactable reports whether a compaction output of extent e stays within
// the format's bounds, and would still once every event in it is redacted:
// a segment is rewritten alone to redact it (compaction merges segments,
// it never splits one), so an output merged up to a bound could never be
// redacted (its rewrite would pass the bound, and every later compaction
// would leave it out).
func redactable(e segment.Extent, compressed bool) bool {
	return e.Fits(compressed) == nil && redactedExtent(e).Fits(compressed) == nil
}

// errCompactClosed is Compact's error when Close stopped it.
var errCompactClosed = fmt.Errorf("%w: Close stopped the compaction (groups it committed stay committed; run Compact again to finish)", ErrClosed)

func maxGen(r []*segHandle) uint64 {
	g := uint64(0)
	for _, s := range r {
		g = max(g, s.Header.Generation)
	}
	return g
}

// compactRun rewrites one run of sealed segments as the segment out;
// committed reports whether out is durably in place (even when removing the
// inputs then failed).
// Events vis says are gone, in the segments redact marks, are written as
// placeholders (deletion_compact.go).
func (l *Log) compactRun(ctx context.Context, run []*segHandle, out string, compress bool, vis *visibility, redact map[*segHandle]bool, progress func(int64)) (committed bool, err error) {
	first := run[0]
	h := segment.Header{LogID: first.Header.LogID, BaseSeq: first.FirstSeq(), Generation: maxGen(run) + 1, Created: time.Now()}
	if compress {
		h.Flags |= segment.FlagCompressed
	}
	tmp := out + segment.TempExt
	f, err := l.fs.Create(tmp)
	if err != nil {
		return false, fmt.Errorf("evlog: compact: creating %s: %w", tmp, err)
	}
	closed := false
	defer func() {
		if !closed {
			err = errors.Join(err, f.Close(), l.fs.Remove(tmp))
		}
	}()
	w := segment.NewSealedWriter(f, h, compress)
	prevTime := int64(math.MinInt64)
	var copied int64
	buf := make([]byte, 1<<20)
	for _, s := range run {
		// Check every input frame before copying a byte of it: corruption
		// is never carried into a new segment.
		ra, end, err := s.Records()
		if err != nil {
			return false, err
		}
		sr, err := segment.Scan(ra, s.Header, end, segment.ScanOptions{File: s.Name, Strict: true, PrevTime: time.Unix(0, prevTime), CollectInfos: true})
		if err != nil {
			return false, err
		}
		x, infos := sr.Index, sr.Infos
		if redact[s] {
			err = appendRedacted(w, s, vis, prevTime, buf)
		} else {
			err = w.AppendRecords(io.NewSectionReader(ra, segment.HeaderSize, end-segment.HeaderSize), infos, buf)
		}
		if err != nil {
			return false, fmt.Errorf("evlog: compact: writing %s: %w", tmp, err)
		}
		if x.Count > 0 {
			prevTime = x.LastTime
		}
		copied += s.Size
		progress(copied)
		if ctx.Err() != nil {
			return false, context.Cause(ctx)
		}
	}
	if err := w.Seal(); err != nil {
		if errors.Is(err, segment.ErrTooLarge) {
			return false, err // the caller leaves the group out; tmp is removed on return
		}
		return false, fmt.Errorf("evlog: compact: sealing %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("evlog: compact: syncing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("evlog: compact: closing %s: %w", tmp, err)
	}
	closed = true // from here on the temporary is removed explicitly
	// Read the new segment back and verify it completely before it
	// replaces anything.
	chk, err := segment.Open(l.fs, tmp)
	if err != nil {
		l.fs.Remove(tmp)
		return false, err
	}
	if _, err := segment.Verify(chk, math.MinInt64); err != nil {
		chk.Close()
		l.fs.Remove(tmp)
		return false, fmt.Errorf("evlog: compact: the rewritten segment does not verify (nothing was replaced): %w", err)
	}
	if err := checkCompacted(chk, h, run); err != nil {
		chk.Close()
		l.fs.Remove(tmp)
		return false, err
	}
	chk.Close()
	// Only the lock holder may replace segments: a removed LOCK may have
	// let another writer in.
	if err := l.checkLock(); err != nil {
		l.fs.Remove(tmp)
		return false, err
	}
	// The commit point. Never over an existing file: a file already named
	// out is not ours (recovery refuses a directory where one could be
	// left by us), and replacing it and then removing the inputs would
	// lose whatever it held.
	if err := l.fs.RenameNoReplace(tmp, out); err != nil {
		l.fs.Remove(tmp)
		if errors.Is(err, fs.ErrExist) {
			return false, fmt.Errorf("evlog: compact: %s already exists and is not part of the log; nothing was replaced (remove it if it does not belong here): %w", out, err)
		}
		return false, fmt.Errorf("evlog: compact: renaming %s: %w", tmp, err)
	}
	if err := l.fs.SyncDir(); err != nil {
		// Whether the rename is durable is unknown, and a later fsync's
		// success would not tell (fsyncgate): the inputs must stay, so
		// the output must go, or the next Compact, planning the same
		// group under the same name, would find it in the way. Either
		// way a crash leaves a log that reads the same: the inputs, with
		// or without the output covering them.
		err = fmt.Errorf("evlog: compact: syncing the directory after creating %s failed, so its inputs were kept and it was removed again (Compact refuses until the log is reopened: check the disk, then restart the machine or remount the file system, reopen the log and run Compact again; see ErrDirSyncFailed): %w", out, err)
		if rerr := l.fs.Remove(out); rerr != nil {
			err = errors.Join(err, fmt.Errorf("evlog: compact: removing %s again (recovery drops its inputs, which it covers; until the log is reopened, Compact cannot redo this group): %w", out, rerr))
		}
		return false, err
	}
	seg, err := segment.Open(l.fs, out)
	if err != nil {
		return true, err
	}
	if err := checkCompacted(seg, h, run); err != nil {
		seg.Close()
		return true, fmt.Errorf("%w (after renaming it to %s; its inputs were kept)", err, out)
	}
	l.mu.Lock()
	cur := l.v.segs
	i := 0
	for i < len(cur) && cur[i] != run[0] {
		i++
	}
	if i+len(run) > len(cur) || cur[i+len(run)-1] != run[len(run)-1] {
		l.mu.Unlock()
		seg.Close()
		return true, fmt.Errorf("evlog: compact: the segment list changed underneath (concurrent compaction?)")
	}
	segs := append(append(append([]*segHandle(nil), cur[:i]...), l.segHandle(seg)), cur[i+len(run):]...)
	l.swapViewLocked(segs, l.v.active)
	l.mu.Unlock()
	for _, s := range run {
		if err := l.fs.Remove(s.Name); err != nil {
			return true, fmt.Errorf("evlog: compact: removing %s (recovery will finish the job): %w", s.Name, err)
		}
	}
	return true, l.fs.SyncDir()
}
