package evlog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// Finding is one problem Verify found.
type Finding struct {
	// Kind is "torn-tail" (an invalid suffix of the newest segment written
	// after the last fsync: repairable, a writer truncates it at open) or
	// "corrupt" (anything else: damage that evlog never repairs).
	Kind   string
	File   string
	Offset int64
	Reason string
	Err    error // the underlying error, for errors.Is (ErrCorrupt, …)
}

func (f Finding) String() string {
	if f.Kind == "torn-tail" {
		return fmt.Sprintf("torn-tail %s %d", f.File, f.Offset)
	}
	return fmt.Sprintf("corrupt %s %d %s", f.File, f.Offset, f.Reason)
}

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Findings []Finding
	Events   uint64 // events in the readable, committed log
	Segments int
}

// Corrupt reports whether any finding is corruption.
func (r VerifyReport) Corrupt() bool {
	for _, f := range r.Findings {
		if f.Kind != "torn-tail" {
			return true
		}
	}
	return false
}

// Verify checks every segment in dir completely — every frame's checksum,
// seq contiguity within and across segments, each sealed segment's footer
// against its records — and reports every problem it finds rather than
// stopping at the first. It takes no lock and modifies nothing, so it can
// run beside a writer. The error is for failures to read the directory.
func Verify(ctx context.Context, dir string) (VerifyReport, error) {
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		return VerifyReport{}, fmt.Errorf("evlog: opening %s: %w", dir, err)
	}
	defer fsys.Close()
	return verifyFS(ctx, vfs.ReadOnly(fsys))
}

func verifyFS(ctx context.Context, fsys vfs.FS) (VerifyReport, error) {
	var rep VerifyReport
	names, err := fsys.List()
	if err != nil {
		return rep, err
	}
	add := func(err error, file string, off int64) {
		f := Finding{Kind: "corrupt", File: file, Offset: off, Reason: err.Error(), Err: err}
		if ce, ok := errors.AsType[*segment.CorruptError](err); ok {
			f.File, f.Offset, f.Reason = ce.File, ce.Offset, ce.Reason
		}
		rep.Findings = append(rep.Findings, f)
	}
	var segs []string
	for _, n := range names {
		if _, _, ok := segment.ParseFileName(n); ok {
			segs = append(segs, n)
		}
	}
	// Superseded generations (a compaction interrupted before it removed
	// them) are not part of the log.
	segs = liveNames(fsys, segs)
	rep.Segments = len(segs)
	var logID *segment.LogID
	prevTime := int64(math.MinInt64)
	next := uint64(0) // the seq the next segment must start at
	for i, name := range segs {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		newest := i == len(segs)-1
		s, err := segment.Open(fsys, name)
		if err != nil {
			// A newest segment too short for its header is a torn
			// creation (Open removes it) only after an unsealed segment
			// (a roll interrupted before the seal); see recoverDir.
			if size, serr := fsys.Stat(name); newest && i > 0 && unsealedSeg(fsys, segs[i-1]) && serr == nil && size <= segment.HeaderSize && errors.Is(err, segment.ErrCorrupt) {
				rep.Findings = append(rep.Findings, Finding{Kind: "torn-tail", File: name, Offset: 0, Reason: err.Error()})
				break
			}
			if errors.Is(err, segment.ErrCorrupt) {
				add(err, name, 0)
				next = 0 // unknown from here on
				continue
			}
			return rep, err
		}
		if logID == nil {
			id := s.Header.LogID
			logID = &id
		} else if s.Header.LogID != *logID {
			add(fmt.Errorf("log ID %s differs from the first segment's %s", s.Header.LogID, *logID), name, 0)
		}
		if base, _, _ := segment.ParseFileName(name); s.FirstSeq() != base {
			add(fmt.Errorf("header says first seq %d, the name says %d", s.FirstSeq(), base), name, 0)
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
			if err != nil {
				add(err, name, 0)
				next = s.Trailer.LastSeq + 1
				break
			}
			rep.Events += uint64(x.Count)
			next = x.LastSeq + 1
			if x.Count > 0 {
				prevTime = x.LastTime
			}
			if newest {
				add(errors.New("the newest segment is sealed but no segment follows it (was the newest segment deleted?)"), name, s.Size-segment.TrailerSize)
			}
		case !newest:
			// Not sealed and not the newest: corrupt, unless it is the
			// leftover of an interrupted roll (the newest holds nothing).
			if i == len(segs)-2 && emptySegment(fsys, segs[i+1]) {
				x, tail, err := segment.Scan(s.File(), s.Header, s.Size, segment.ScanOptions{File: name, PrevTime: prevTime})
				if err != nil {
					add(err, name, 0)
				} else {
					rep.Events += uint64(x.Count)
					if tail != nil {
						rep.Findings = append(rep.Findings, Finding{Kind: "torn-tail", File: name, Offset: tail.Offset, Reason: tail.Reason})
					}
				}
				s.Close()
				return rep, nil
			}
			add(errors.New("segment is not the newest but is not sealed (it ends without a valid trailer)"), name, s.Size)
			next = 0
		default:
			x, tail, err := segment.Scan(s.File(), s.Header, s.Size, segment.ScanOptions{File: name, PrevTime: prevTime})
			if err != nil {
				add(err, name, 0)
				break
			}
			rep.Events += uint64(x.Count)
			if tail != nil {
				rep.Findings = append(rep.Findings, Finding{Kind: "torn-tail", File: name, Offset: tail.Offset, Reason: tail.Reason})
			}
		}
		s.Close()
	}
	return rep, nil
}

// unsealedSeg reports whether a segment opens with a valid header and is
// not sealed.
func unsealedSeg(fsys vfs.FS, name string) bool {
	s, err := segment.Open(fsys, name)
	if err != nil {
		return false
	}
	defer s.Close()
	return !s.Sealed
}

// emptySegment reports whether a segment holds no committed event.
func emptySegment(fsys vfs.FS, name string) bool {
	s, err := segment.Open(fsys, name)
	if err != nil {
		size, serr := fsys.Stat(name)
		return serr == nil && size <= segment.HeaderSize
	}
	defer s.Close()
	x, _, err := segment.Scan(s.File(), s.Header, s.Size, segment.ScanOptions{File: name, PrevTime: math.MinInt64})
	return err == nil && x.Count == 0
}

// liveNames drops segments superseded by a higher generation covering
// them (judged from the names and the covering segment's trailer).
func liveNames(fsys vfs.FS, names []string) []string {
	var out []string
	for _, n := range names {
		base, gen, _ := segment.ParseFileName(n)
		superseded := false
		for _, m := range names {
			b2, g2, _ := segment.ParseFileName(m)
			if g2 <= gen || b2 > base {
				continue
			}
			if s, err := segment.Open(fsys, m); err == nil {
				if s.Sealed && s.Trailer.LastSeq >= base {
					superseded = true
				}
				s.Close()
			}
		}
		if !superseded && !strings.HasSuffix(n, segment.TempExt) {
			out = append(out, n)
		}
	}
	return out
}
