package evlog

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// RecoveryReport says what Open found and did. A writer repairs; a
// read-only open only reports (it never modifies anything).
type RecoveryReport struct {
	// TornTail, when not nil, is the invalid suffix of the newest segment:
	// an incomplete batch or torn frame that no mark records as durable. A
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
	// superseded by a compaction.
	Removed []string
}

// recovered is the state Open builds from the directory.
type recovered struct {
	logID  segment.LogID
	segs   []*segment.Segment // live segments in log order
	active *segment.Index     // index of the newest, unsealed segment (nil if none)
	// needSuccessor is set when the newest live segment is sealed and a
	// new active segment must be created after it.
	needSuccessor bool
	report        RecoveryReport
}

func (r *recovered) close() {
	for _, s := range r.segs {
		s.Close()
	}
}

type segFile struct {
	name      string
	base, gen uint64
	size      int64
	seg       *segment.Segment
	err       error
}

// recoverDir opens the segments of fsys and applies the recovery rules of
// docs/FORMAT.md ("Recovery"). With readOnly it modifies nothing.
func recoverDir(fsys vfs.FS, log *slog.Logger, readOnly bool) (_ *recovered, err error) {
	names, err := fsys.List()
	if err != nil {
		return nil, fmt.Errorf("evlog: listing the log directory: %w", err)
	}
	rec := &recovered{}
	var files []*segFile
	defer func() {
		if err != nil {
			for _, f := range files {
				if f.seg != nil {
					f.seg.Close()
				}
			}
		}
	}()
	remove := func(name, why string) error {
		if readOnly {
			return nil
		}
		if err := fsys.Remove(name); err != nil {
			return fmt.Errorf("evlog: recovery: removing %s: %w", name, err)
		}
		log.Warn("evlog: recovery removed a file", "file", name, "reason", why)
		rec.report.Removed = append(rec.report.Removed, name)
		return nil
	}
	removedAny := false
	for _, name := range names {
		if strings.HasSuffix(name, segment.Ext+segment.TempExt) {
			if err := remove(name, "temporary left by an interrupted write"); err != nil {
				return nil, err
			}
			removedAny = !readOnly
			continue
		}
		base, gen, ok := segment.ParseFileName(name)
		if !ok {
			continue
		}
		f := &segFile{name: name, base: base, gen: gen}
		if f.size, err = fsys.Stat(name); err != nil {
			return nil, fmt.Errorf("evlog: %s: %w", name, err)
		}
		f.seg, f.err = segment.Open(fsys, name)
		if f.err != nil && !errors.Is(f.err, segment.ErrCorrupt) {
			return nil, f.err
		}
		files = append(files, f)
	}
	// Log order; for equal first seqs the newest generation first.
	slices.SortFunc(files, func(a, b *segFile) int {
		if c := cmp.Compare(a.base, b.base); c != 0 {
			return c
		}
		return cmp.Compare(b.gen, a.gen)
	})

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
	if n := len(files); n > 0 && files[n-1].err != nil && files[n-1].size <= segment.HeaderSize {
		f := files[n-1]
		if n < 2 || files[n-2].seg == nil || files[n-2].seg.Sealed {
			why := f.err.Error()
			if ce, ok := errors.AsType[*segment.CorruptError](f.err); ok {
				why = ce.Reason
			}
			f.err = &segment.CorruptError{File: f.name, Reason: fmt.Sprintf(
				"%s; only a crash during a roll, before the previous segment was sealed, could leave that, and events in it may have been acknowledged: restore it from a backup, or remove it if you know it held no event", why)}
		} else {
			log.Warn("evlog: recovery: newest segment has no valid header", "file", f.name, "err", f.err)
			if err := remove(f.name, "newest segment without a valid header (torn creation)"); err != nil {
				return nil, err
			}
			files = files[:n-1]
			removedTorn, removedAny = true, removedAny || !readOnly
		}
	}

	// Drop generations superseded by a compaction, check the chain.
	var live []*segFile
	for _, f := range files {
		if f.err != nil {
			return nil, f.err
		}
		if n := len(live); n > 0 {
			p := live[n-1]
			if p.seg.Sealed && f.base <= p.seg.Trailer.LastSeq {
				if f.gen < p.gen {
					f.seg.Close()
					f.seg = nil
					if err := remove(f.name, "superseded by compacted segment "+p.name); err != nil {
						return nil, err
					}
					removedAny = removedAny || !readOnly
					continue
				}
				return nil, &segment.CorruptError{File: f.name, Reason: fmt.Sprintf("overlaps segment %s (seqs %d..%d)", p.name, p.base, p.seg.Trailer.LastSeq)}
			}
		}
		if f.seg.Header.BaseSeq != f.base {
			return nil, &segment.CorruptError{File: f.name, Reason: fmt.Sprintf("header says first seq %d, the name says %d", f.seg.Header.BaseSeq, f.base)}
		}
		if len(live) > 0 && f.seg.Header.LogID != live[0].seg.Header.LogID {
			return nil, &segment.CorruptError{File: f.name, Err: segment.ErrForeign,
				Reason: fmt.Sprintf("log ID %s differs from %s's %s", f.seg.Header.LogID, live[0].name, live[0].seg.Header.LogID)}
		}
		live = append(live, f)
	}

	// A crash during a roll (the new segment created, the old one not yet
	// sealed) leaves an unsealed second-newest segment and a newest one
	// holding no committed event: drop the newest, continue the old one.
	if n := len(live); n >= 2 && !live[n-2].seg.Sealed && !live[n-1].seg.Sealed {
		nf := live[n-1]
		idx, _, err := segment.Scan(nf.seg.File(), nf.seg.Header, nf.seg.Size, segment.ScanOptions{File: nf.name, PrevTime: math.MinInt64})
		if err == nil && idx.Count == 0 {
			nf.seg.Close()
			nf.seg = nil
			if err := remove(nf.name, "empty newest segment left by a crash during a roll"); err != nil {
				return nil, err
			}
			removedAny = removedAny || !readOnly
			live = live[:n-1]
		}
	}
	// The log starts at seq 1: a first segment starting later means the
	// segments before it are missing.
	if len(live) > 0 && live[0].base != 1 {
		return nil, &segment.CorruptError{File: live[0].name, Reason: fmt.Sprintf("the first segment starts at seq %d: the segments before it are missing", live[0].base)}
	}
	// Every segment but the newest is sealed, and the seqs are contiguous.
	prevTime := int64(math.MinInt64)
	for i := 0; i < len(live)-1; i++ {
		f, s := live[i], live[i].seg
		if !s.Sealed {
			return nil, &segment.CorruptError{File: f.name, Offset: s.Size, Reason: "segment is not the newest but is not sealed (it ends without a valid trailer)"}
		}
		if n := live[i+1].base; n != s.Trailer.LastSeq+1 {
			return nil, &segment.CorruptError{File: live[i+1].name, Reason: fmt.Sprintf("first seq %d does not follow %s's last seq %d (a segment is missing)", n, f.name, s.Trailer.LastSeq)}
		}
		if s.Trailer.Count > 0 {
			if s.Trailer.FirstTime < prevTime {
				return nil, &segment.CorruptError{File: f.name, Offset: s.Size - segment.TrailerSize, Reason: "first recorded time precedes the previous segment's last"}
			}
			prevTime = s.Trailer.LastTime
		}
	}
	if n := len(live); n > 0 {
		f, s := live[n-1], live[n-1].seg
		switch {
		case s.Sealed && !removedTorn:
			return nil, &segment.CorruptError{File: f.name, Offset: s.Size - segment.TrailerSize,
				Reason: "the newest segment is sealed but no segment follows it (was the newest segment deleted?)"}
		case s.Sealed:
			rec.needSuccessor = true
		default:
			idx, tail, err := segment.Scan(s.File(), s.Header, s.Size, segment.ScanOptions{File: f.name, PrevTime: prevTime})
			if err != nil {
				return nil, err
			}
			rec.active = idx
			if tail != nil {
				rec.report.TornTail, rec.report.TornFile = tail, f.name
			}
		}
	}
	if removedAny {
		if err := fsys.SyncDir(); err != nil {
			return nil, fmt.Errorf("evlog: recovery: syncing the directory: %w", err)
		}
	}
	for _, f := range live {
		rec.segs = append(rec.segs, f.seg)
	}
	files = nil // ownership moves to rec
	if len(live) > 0 {
		rec.logID = live[0].seg.Header.LogID
	}
	return rec, nil
}
