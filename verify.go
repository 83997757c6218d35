package evlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// FindingKind says what kind of problem a Finding is.
type FindingKind string

const (
	// FindingTornTail: an invalid suffix of the newest segment written
	// after the last fsync (repairable: a writer truncates it at open).
	FindingTornTail FindingKind = "torn-tail"
	// FindingStranger: an entry named like a log file that is not a
	// regular file — a symbolic link, FIFO, device or directory — which is
	// not part of the log and is never opened or deleted (a warning, not
	// corruption).
	FindingStranger FindingKind = "stranger"
	// FindingCorrupt: anything else, damage that evlog never repairs.
	FindingCorrupt FindingKind = "corrupt"
)

// Finding is one problem Verify found.
type Finding struct {
	Kind   FindingKind
	File   string
	Offset int64
	Reason string
	Err    error // the underlying error, for errors.Is (ErrCorrupt, …)
}

func (f Finding) String() string {
	switch f.Kind {
	case FindingTornTail:
		return fmt.Sprintf("torn-tail %s %d", f.File, f.Offset)
	case FindingStranger:
		return fmt.Sprintf("stranger %s %s", f.File, f.Reason)
	}
	return fmt.Sprintf("corrupt %s %d %s", f.File, f.Offset, f.Reason)
}

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Findings []Finding
	Events   uint64 // events in the readable, committed log
	// LastSeq is the seq of the last committed event read, 0 when none:
	// in the newest segment every committed batch counts, also those
	// after its last mark (a crash before the mark reached the disk, or a
	// live writer's group whose mark is still being written), which a
	// read-only open under SyncAlways does not serve yet (see
	// docs/FORMAT.md, "Recovery", rule 9) and a writer's open keeps.
	LastSeq  uint64
	Segments int
}

// committed records that a segment's committed events, count of them,
// end at seq last.
func (r *VerifyReport) committed(count int, last uint64) {
	if count > 0 {
		r.LastSeq = max(r.LastSeq, last)
	}
}

// Corrupt reports whether any finding is corruption.
func (r VerifyReport) Corrupt() bool {
	for _, f := range r.Findings {
		if f.Kind == FindingCorrupt {
			return true
		}
	}
	return false
}

// Verify checks every segment in dir completely — every frame's checksum,
// seq contiguity within and across segments, each sealed segment's footer
// against its records, that every deletion marker of a verified segment
// decodes as the read path decodes it (a FindingCorrupt at the marker's
// frame otherwise: every read of the log fails on it) — and reports every
// problem it finds rather than stopping at the first. It takes no lock and modifies nothing, so it can
// run beside a writer. The error is for failures to read the directory,
// and ErrNotALog for a directory that holds files but no log.
func Verify(ctx context.Context, dir string) (VerifyReport, error) {
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		return VerifyReport{}, fmt.Errorf("evlog: opening %s: %w", dir, err)
	}
	defer fsys.Close()
	ro := vfs.ReadOnly(fsys)
	if err := checkLogDir(ro); err != nil {
		return VerifyReport{}, fmt.Errorf("evlog: opening %s: %w", dir, err)
	}
	return verifyBeside(ctx, ro)
}

// verifyBeside is Verify of the log directory ro (read-only), which a
// writer in another process may be changing: a finding is reported only
// when it persists across a stable listing (see besideWriter).
func verifyBeside(ctx context.Context, ro vfs.FS) (VerifyReport, error) {
	return besideWriter(ro, func(*segment.Dir) (VerifyReport, error) { return verifyFS(ctx, ro) },
		func(r VerifyReport, err error) bool { return ctx.Err() == nil && (err != nil || r.Corrupt()) })
}

func verifyFS(ctx context.Context, fsys vfs.FS) (VerifyReport, error) {
	var rep VerifyReport
	dir, err := segment.ReadDir(fsys)
	if err != nil {
		return rep, err
	}
	if err := restoreMarked(dir.Other); err != nil {
		return rep, err
	}
	add := func(err error, file string, off int64) {
		f := Finding{Kind: FindingCorrupt, File: file, Offset: off, Reason: err.Error(), Err: err}
		if ce, ok := errors.AsType[*segment.CorruptError](err); ok {
			f.File, f.Offset, f.Reason = ce.File, ce.Offset, ce.Reason
		}
		rep.Findings = append(rep.Findings, f)
	}
	for _, e := range dir.Strangers {
		err := segment.StrangerError(e)
		rep.Findings = append(rep.Findings, Finding{Kind: FindingStranger, File: e.Name, Reason: err.Error(), Err: err})
	}
	files, err := segment.OpenSegments(fsys, dir.Segments)
	if err != nil {
		return rep, err
	}
	defer segment.CloseSegments(files)
	// The directory rules: superseded generations (a compaction
	// interrupted before it removed them) are not part of the log; stray
	// copies and segments of other logs are corruption.
	segs, _, problems := segment.Resolve(files)
	for _, p := range problems {
		add(p, "", 0)
	}
	rep.Segments = len(segs)
	prevTime := int64(math.MinInt64)
	next := uint64(0) // the seq the next segment must start at
	for i, f := range segs {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		name := f.Name
		newest := i == len(segs)-1
		s := f.Seg
		if f.Err != nil {
			// A newest segment too short for its header is a torn
			// creation (Open removes it) only after an unsealed segment
			// (a roll interrupted before the seal); see recoverDir.
			if size, serr := fsys.Stat(name); newest && i > 0 && unsealedSeg(segs[i-1]) && serr == nil && size <= segment.HeaderSize && errors.Is(f.Err, segment.ErrCorrupt) {
				rep.Findings = append(rep.Findings, Finding{Kind: FindingTornTail, File: name, Offset: 0, Reason: f.Err.Error()})
				break
			}
			add(f.Err, name, 0)
			next = 0 // unknown from here on
			continue
		}
		switch {
		case i == 0 && s.FirstSeq() != 1:
			add(fmt.Errorf("the first segment starts at seq %d: the segments before it are missing", s.FirstSeq()), name, 0)
		case next != 0 && s.FirstSeq() != next:
			add(fmt.Errorf("first seq %d, want %d (a segment is missing or damaged)", s.FirstSeq(), next), name, 0)
		}
		switch {
		case s.Sealed:
			x, err := segment.Verify(s, prevTime)
			if err != nil && errors.Is(err, segment.ErrCorrupt) && tornSealPossible(fsys, segs, i) {
				// As recovery: before the first event of the segment after
				// it, a seal is not proven; one that does not verify was
				// torn by a crash, and the segment is read as unsealed.
				sr, serr := segment.Scan(s.File(), s.Header, s.Size, segment.ScanOptions{File: name, PrevTime: time.Unix(0, prevTime)})
				x, tail := sr.Index, sr.Tail
				if serr != nil {
					add(serr, name, 0)
				} else {
					rep.Events += uint64(x.Count)
					rep.committed(x.Count, x.LastSeq)
					verifyMarkers(s.File(), name, x, add)
					if tail != nil {
						rep.Findings = append(rep.Findings, Finding{Kind: FindingTornTail, File: name, Offset: tail.Offset, Reason: "torn seal: " + tail.Reason})
					}
				}
				return rep, nil
			}
			if err != nil {
				add(err, name, 0)
				next = s.Trailer.LastSeq + 1
				break
			}
			rep.Events += uint64(x.Count)
			rep.committed(x.Count, x.LastSeq)
			next = x.LastSeq + 1
			if x.Count > 0 {
				prevTime = x.LastTime
			}
			if ra, _, err := s.Records(); err != nil {
				add(err, name, 0)
			} else {
				verifyMarkers(ra, name, x, add)
			}
			if newest && !successorListed(fsys, s.Trailer.LastSeq+1) { // a roll after the listing: see successorListed
				add(errors.New("the newest segment is sealed but no segment follows it (was the newest segment deleted?)"), name, s.Size-segment.TrailerSize)
			}
		case !newest:
			// Not sealed and not the newest: corrupt, unless it is the
			// leftover of an interrupted roll (the newest holds nothing).
			// (The newest not sealed, as recovery requires: a roll
			// creates the new segment unsealed.)
			if i == len(segs)-2 && !(segs[i+1].Err == nil && segs[i+1].Seg.Sealed) && emptySegment(fsys, segs[i+1]) {
				sr, err := segment.Scan(s.File(), s.Header, s.Size, segment.ScanOptions{File: name, PrevTime: time.Unix(0, prevTime)})
				x, tail := sr.Index, sr.Tail
				if err != nil {
					add(err, name, 0)
				} else {
					rep.Events += uint64(x.Count)
					rep.committed(x.Count, x.LastSeq)
					verifyMarkers(s.File(), name, x, add)
					if tail != nil {
						rep.Findings = append(rep.Findings, Finding{Kind: FindingTornTail, File: name, Offset: tail.Offset, Reason: tail.Reason})
					}
				}
				return rep, nil
			}
			add(errors.New("segment is not the newest but is not sealed (it ends without a valid trailer)"), name, s.Size)
			next = 0
		default:
			sr, err := segment.Scan(s.File(), s.Header, s.Size, segment.ScanOptions{File: name, PrevTime: time.Unix(0, prevTime)})
			x, tail := sr.Index, sr.Tail
			if err != nil {
				add(err, name, 0)
				break
			}
			rep.Events += uint64(x.Count)
			rep.committed(x.Count, x.LastSeq)
			verifyMarkers(s.File(), name, x, add)
			torn, cerr := verifyCheckpoint(fsys, s, sr)
			if torn {
				rep.Findings = append(rep.Findings, Finding{Kind: FindingTornTail, File: name, Offset: tail.Offset, Reason: tail.Reason})
			}
			if cerr != nil {
				add(cerr, segment.CheckpointName(name), 0)
			}
		}
	}
	return rep, nil
}

// verifyMarkers decodes every deletion marker and retention record among
// the committed events that x indexes in segment name (records ra, in x's
// offsets), as every read of the log does (deletionsAt, retentionAt), and
// reports each one whose Data does not decode to add, as corruption at its
// frame's offset: the log's reads all fail on it. Only DeletionsStream's
// and RetentionStream's postings are read, so a segment without either
// costs two map look-ups. Types this version does not interpret are not
// decoded, as by the read path.
func verifyMarkers(ra io.ReaderAt, name string, x *segment.Index, add func(error, string, int64)) {
	for _, stream := range []string{DeletionsStream, RetentionStream} {
		sp, ok, err := x.Stream(stream)
		if err != nil {
			add(err, name, 0)
			return
		}
		if !ok {
			continue
		}
		var (
			er  segment.EventReader
			dec segment.Decoder
			e   Envelope
		)
		err = er.Read(ra, name, sp.Posts, func(off int64, p []byte) error {
			if err := dec.Decode(p, &e); err != nil {
				add(&segment.CorruptError{File: name, Offset: off, Reason: err.Error()}, name, off)
				return nil
			}
			var ce *segment.CorruptError
			switch {
			case stream == DeletionsStream && (e.Type == TypeDeleted || e.Type == TypeTruncate || e.Type == TypeTombstone):
				if _, err := decodeMarker(e.Data); err != nil {
					ce = badMarker(&e, err)
				}
			case stream == RetentionStream && e.Type == TypeRetention:
				if _, err := decodeRetention(e.Data); err != nil {
					ce = badRetention(&e, err)
				}
			}
			if ce != nil {
				ce.File, ce.Offset = name, off
				add(ce, name, off)
			}
			return nil
		})
		if err != nil {
			add(err, name, 0)
		}
	}
}

// tornSealPossible reports whether segs[i] is sealed by a roll whose seal a
// crash may have torn (recoverDir): the second-newest segment, written by
// appends (generation 0, uncompressed), and the newest holds no committed
// event and no mark and is not sealed.
func tornSealPossible(fsys vfs.FS, segs []*segment.DirSegment, i int) bool {
	if i != len(segs)-2 {
		return false
	}
	h, next := segs[i].Seg.Header, segs[i+1]
	return h.Generation == 0 && h.Flags&segment.FlagCompressed == 0 &&
		next.Err == nil && !next.Seg.Sealed && emptySegment(fsys, next)
}

// unsealedSeg reports whether a segment opened with a valid header and is
// not sealed.
func unsealedSeg(f *segment.DirSegment) bool {
	return f.Err == nil && f.Seg != nil && !f.Seg.Sealed
}

// emptySegment reports whether a segment holds neither a committed event
// nor a mark, as recovery's newestBlank: a mark is written into a segment
// only after the seal of the one before it was fsynced, and an authentic
// checkpoint proves it held an event.
func emptySegment(fsys vfs.FS, f *segment.DirSegment) bool {
	if f.Err != nil {
		size, serr := fsys.Stat(f.Name)
		return serr == nil && size <= segment.HeaderSize
	}
	s := f.Seg
	if checkpointProvesEvent(fsys, s, true) {
		return false
	}
	sr, err := segment.Scan(s.File(), s.Header, s.Size, segment.ScanOptions{File: f.Name})
	return err == nil && sr.Index.Count == 0 && !sr.Index.Marked
}
