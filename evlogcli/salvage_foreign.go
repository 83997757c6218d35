package evlogcli

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// Salvage copies only the log's own events. A segment file of another log
// (copied into the directory by mistake, or left there) must not be
// mixed into the new log, even when its header, the only place that names
// its log, is damaged. The raw reader, asked for the log's own segments
// (rawVisitor.owned), leaves out:
//
//   - a segment whose valid header holds another log ID than the log's
//     (segment.DirLogID);
//   - a segment whose header is damaged and whose marks verify with
//     another log's ID (segment.SalvageKin);
//   - a segment whose header is damaged, no mark of which proves it the
//     log's, when the seqs of its batches do not fit where its name puts
//     it: another segment whose header is the log's has its first seq, or
//     they start before that first seq (or, with no damage before its
//     first batch, elsewhere than at it), or they run into the next
//     segment's, or the segments before it hold them already.
//
// The first two are another log's (exForeign): reported, not a loss. The
// last (exDoubt) may hold the log's events: its seqs that are not copied
// from elsewhere are reported lost. A segment whose header is damaged and
// whose seqs fit is read as before (no proof against it). Each left-out
// file is one gap covering it, whose reason says why ("not copied: "
// REASON). dump and tail, reading a log that cannot be opened frame by
// frame (readRaw, dump.go), leave out the same segments by the same
// decision, and name each ("corrupt FILE 0 not printed: " REASON).

// exclusion says why the raw reader left a segment file out.
type exclusion int

const (
	notExcluded exclusion = iota
	exForeign             // proven another log's
	exDoubt               // nothing proves whose; its seqs do not fit among the log's
)

// vetSegment decides whether files[i] is read as the log's (nil) or left
// out (the gap reporting it, whose reason says why, for its reader to
// prefix with what it does not do with the file). id is the log's ID, seen the highest seq of
// the batches read so far from the files before it, tornOK whether it may
// end in a torn tail.
func vetSegment(ctx context.Context, fsys vfs.FS, files []rawFile, i int, id rawLogID, seen uint64, tornOK bool) (*rawGap, error) {
	f := files[i]
	if f.hdrOK {
		if id.ok && f.logID != id.id {
			return excluded(fsys, f, exForeign, fmt.Sprintf("a segment of another log (its header holds log ID %s; the log's is %s, as in %s)", f.logID, id.id, id.name), 0, 0)
		}
		return nil, nil
	}
	file, err := fsys.Open(f.name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	size, err := file.Size()
	if err != nil {
		return nil, err
	}
	if id.ok {
		kin, other, err := segment.SalvageKin(ctx, file, size, id.id, f.BaseSeq, f.Generation)
		if err != nil {
			return nil, err
		}
		switch kin {
		case segment.KinOwn:
			return nil, nil
		case segment.KinForeign:
			return excluded(fsys, f, exForeign, fmt.Sprintf("a segment of another log (its header is damaged, but its marks verify with log ID %s; the log's is %s, as in %s)", other, id.id, id.name), 0, 0)
		}
	}
	// Nothing proves whose it is: its seqs must fit where its name puts it.
	var (
		first, lo, hi uint64
		found         bool
		clean         = true // no damage before its first batch but the header
	)
	err = segment.Salvage(ctx, file, size, segment.SalvageOptions{
		Name:   f.name,
		TornOK: tornOK,
		Batch: func(b *segment.Batch) error {
			a, z := b.Events[0].Seq, b.Events[len(b.Events)-1].Seq
			if !found {
				first, lo = a, a
			}
			found = true
			lo, hi = min(lo, a), max(hi, z)
			return nil
		},
		Gap: func(g *segment.Gap) error {
			if !found && g.Offset != 0 {
				clean = false
			}
			return nil
		},
	})
	if err != nil || !found {
		return nil, err // nothing to copy: read it to report its gaps
	}
	var why string
	next := uint64(0) // the first seq of the next segment by name
	for j, o := range files {
		if o.BaseSeq > f.BaseSeq && (next == 0 || o.BaseSeq < next) {
			next = o.BaseSeq
		}
		if j != i && o.BaseSeq == f.BaseSeq && o.hdrOK && (!id.ok || o.logID == id.id) && why == "" {
			why = fmt.Sprintf("its name's first seq %d is that of %s, whose header is the log's", f.BaseSeq, o.name)
		}
	}
	switch {
	case why != "":
	case lo < f.BaseSeq:
		why = fmt.Sprintf("they start before the first seq %d its name gives", f.BaseSeq)
	case clean && first != f.BaseSeq:
		why = fmt.Sprintf("its first batch starts at seq %d, not at the first seq %d its name gives", first, f.BaseSeq)
	case next != 0 && hi >= next:
		why = fmt.Sprintf("they run into those of the next segment (from seq %d)", next)
	case lo <= seen:
		why = fmt.Sprintf("the segments before it hold seqs through %d", seen)
	default:
		return nil, nil
	}
	return excluded(fsys, f, exDoubt, fmt.Sprintf("its header is damaged, no mark proves it a segment of this log, and its seqs %d..%d do not fit: %s", lo, hi, why), lo, hi)
}

// excluded is the gap reporting the whole of file f, left out.
func excluded(fsys vfs.FS, f rawFile, ex exclusion, reason string, first, last uint64) (*rawGap, error) {
	file, err := fsys.Open(f.name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	size, err := file.Size()
	if err != nil {
		return nil, err
	}
	return &rawGap{file: f.name, excluded: ex, Gap: segment.Gap{Length: size, Whole: true, Reason: reason, FirstSeq: first, LastSeq: last}}, nil
}

// exclude reports a segment file the raw reader left out. The seqs of one
// that may be the log's (exDoubt) are reported lost at the end, as far as
// they were not copied from elsewhere (settleWithheld).
func (s *salvager) exclude(g *rawGap) {
	reason := "not copied: " + g.Reason
	s.rep.Gaps = append(s.rep.Gaps, gapJSON{File: g.file, Offset: g.Offset, Length: g.Length, Reason: reason})
	s.rep.lines = append(s.rep.lines, fmt.Sprintf("gap %s %d %d %s", g.file, g.Offset, g.Length, oneLine(reason)))
	if g.excluded == exDoubt {
		s.retUnsure = true // maybe the log's, not read (salvage_retention.go)
	}
	if g.excluded == exDoubt && g.FirstSeq > 0 {
		s.withheld = append(s.withheld, seqRange{From: g.FirstSeq, To: g.LastSeq,
			Reason: fmt.Sprintf("in %s, not copied: its header is damaged and nothing proves it this log's", g.file)})
	}
}

// copiedSeq records that source seq was copied (in increasing order).
func (s *salvager) copiedSeq(seq uint64) {
	if n := len(s.copied); n > 0 && s.copied[n-1].To+1 == seq {
		s.copied[n-1].To = seq
		return
	}
	s.copied = append(s.copied, seqRange{From: seq, To: seq})
}

// settleWithheld reports lost the seqs of the withheld files that were
// neither copied nor reported lost already.
func (s *salvager) settleWithheld() {
	covered := append(slices.Clone(s.copied), s.rep.Lost...)
	for _, w := range s.withheld {
		for _, r := range subtractRanges(w, covered) {
			s.lost(r)
		}
	}
}

// subtractRanges returns the parts of w outside every range of rs (a
// range with To 0 runs to the end).
func subtractRanges(w seqRange, rs []seqRange) []seqRange {
	parts := []seqRange{w}
	for _, r := range rs {
		to := r.To
		if to == 0 {
			to = math.MaxUint64
		}
		var out []seqRange
		for _, p := range parts {
			if r.From > p.To || to < p.From {
				out = append(out, p)
				continue
			}
			if p.From < r.From {
				q := p
				q.To = r.From - 1
				out = append(out, q)
			}
			if to < p.To {
				q := p
				q.From = to + 1
				out = append(out, q)
			}
		}
		parts = out
	}
	return parts
}
