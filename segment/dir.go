package segment

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/evlog/evlog/internal/vfs"
)

// The directory rules: which files of a log directory are part of the log.
// Recovery, Verify, a read-only log's Refresh and evlogctl's raw reader all
// decide it here, and nowhere else (docs/FORMAT.md, "Files in a log
// directory").
//
//   - Only regular files count. A symbolic link, FIFO, device, socket or
//     directory named like a log file is a stranger: reported, never
//     opened (a FIFO would block the reader forever), never deleted.
//   - A segment is a regular file named by FormatFileName whose header
//     agrees with its name (first seq and generation) and carries the
//     log's ID.
//   - A segment is superseded when a sealed segment of a higher generation
//     covers all of its seqs (a compaction wrote that one and was
//     interrupted before removing its inputs). Only a sealed segment can be
//     superseded; one only partly covered is corruption.
//   - NAME.seg.tmp files are temporaries: never trusted, removed by the
//     writer (only the lock holder deletes anything).
//   - NAME.ckpt (and NAME.ckpt.tmp) files are checkpoints of segment
//     NAME.seg's index (see checkpoint.go): never required, trusted only
//     as far as they prove, replaced by an atomic rename; the writer
//     removes those of any segment but the active one, and temporaries.

// Snapshot file extensions, for classifying names only (package snapshot
// owns their format and names).
const (
	snapExt    = ".snap"
	snapTmpExt = ".snap.tmp"
)

// DirFile is a regular file named like a segment.
type DirFile struct {
	Name       string
	BaseSeq    uint64 // from the name
	Generation uint64 // from the name
}

// Dir is a log directory's entries classified by name and type. ReadDir
// opens no file.
type Dir struct {
	// Segments are the regular files named like segments, in log order:
	// by first seq, and for equal first seqs the highest generation first.
	Segments []DirFile
	// Temps are regular files named like segment temporaries (*.seg.tmp).
	Temps []string
	// Snapshots are regular files named like snapshots or their
	// temporaries (*.snap, *.snap.tmp); package snapshot interprets them.
	Snapshots []string
	// Checkpoints are regular files named like segment checkpoints or
	// their temporaries (*.ckpt, *.ckpt.tmp).
	Checkpoints []string
	// Strangers are entries named like segments, segment temporaries or
	// snapshots that are not regular files. Nothing opens or deletes them.
	Strangers []vfs.DirEntry
	// Other are the remaining names (LOCK, files evlog does not know),
	// which are ignored.
	Other []string
}

// logFileName reports whether name looks like a file of the log.
func logFileName(name string) bool {
	if _, _, ok := ParseFileName(name); ok {
		return true
	}
	return strings.HasSuffix(name, Ext+TempExt) || strings.HasSuffix(name, snapExt) || strings.HasSuffix(name, snapTmpExt) ||
		strings.HasSuffix(name, CheckpointExt) || strings.HasSuffix(name, CheckpointExt+TempExt)
}

// ReadDir lists fsys and classifies its entries (see Dir). It opens
// nothing, so it is cheap enough to call on every poll.
func ReadDir(fsys vfs.FS) (*Dir, error) {
	entries, err := fsys.ReadDir()
	if err != nil {
		return nil, fmt.Errorf("evlog/segment: listing the log directory: %w", err)
	}
	d := &Dir{}
	for _, e := range entries {
		switch {
		case !logFileName(e.Name):
			d.Other = append(d.Other, e.Name)
		case !e.Regular():
			d.Strangers = append(d.Strangers, e)
		case strings.HasSuffix(e.Name, Ext+TempExt):
			d.Temps = append(d.Temps, e.Name)
		case strings.HasSuffix(e.Name, snapExt) || strings.HasSuffix(e.Name, snapTmpExt):
			d.Snapshots = append(d.Snapshots, e.Name)
		case strings.HasSuffix(e.Name, CheckpointExt) || strings.HasSuffix(e.Name, CheckpointExt+TempExt):
			d.Checkpoints = append(d.Checkpoints, e.Name)
		default:
			base, gen, _ := ParseFileName(e.Name)
			d.Segments = append(d.Segments, DirFile{Name: e.Name, BaseSeq: base, Generation: gen})
		}
	}
	slices.SortFunc(d.Segments, func(a, b DirFile) int {
		return cmp.Or(cmp.Compare(a.BaseSeq, b.BaseSeq), cmp.Compare(b.Generation, a.Generation))
	})
	return d, nil
}

// Newest returns the segment file with the highest first seq (and, among
// those, the highest generation): the active segment of a healthy log.
func (d *Dir) Newest() (DirFile, bool) {
	var best DirFile
	found := false
	for _, f := range d.Segments {
		if !found || f.BaseSeq > best.BaseSeq || f.BaseSeq == best.BaseSeq && f.Generation > best.Generation {
			best, found = f, true
		}
	}
	return best, found
}

// StrangerError describes a stranger for reports (without its name,
// which the report carries).
func StrangerError(e vfs.DirEntry) error {
	return fmt.Errorf("a %s named like a log file: not part of the log, never opened or removed (remove it if it does not belong here)", vfs.TypeName(e.Mode))
}

// DirSegment is a segment file of a directory, opened.
type DirSegment struct {
	DirFile
	// Seg is the opened segment; nil when Err is set.
	Seg *Segment
	// Err is the *CorruptError that opening the segment gave (an invalid
	// header or trailer); Seg is nil then.
	Err error
	// By is, for a superseded segment, the compacted segment covering it.
	By *DirSegment
}

// Close closes the segment if it is open.
func (f *DirSegment) Close() {
	if f.Seg != nil {
		f.Seg.Close()
		f.Seg = nil
	}
}

// OpenSegments opens every segment file listed in files (header and
// trailer only), in the order given. A segment whose header or trailer is
// invalid is returned with Err set; any other error (I/O, a name that is
// no longer a regular file) fails the whole call, closing what it opened.
func OpenSegments(fsys vfs.FS, files []DirFile) ([]*DirSegment, error) {
	out := make([]*DirSegment, 0, len(files))
	for _, df := range files {
		f := &DirSegment{DirFile: df}
		f.Seg, f.Err = Open(fsys, df.Name)
		if f.Err != nil && !errors.Is(f.Err, ErrCorrupt) {
			err := f.Err
			CloseSegments(out)
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// CloseSegments closes every open segment of files.
func CloseSegments(files []*DirSegment) {
	for _, f := range files {
		f.Close()
	}
}

// last returns the last seq of a sealed segment.
func (f *DirSegment) last() uint64 { return f.Seg.Trailer.LastSeq }

// DirLogID returns the log's ID by the directory rules: the one most of
// the opened segments of files carry; ties go to the one of the segment
// first in (first seq, generation) order, whose name it returns too. ok
// is false when no segment of files is open.
func DirLogID(files []*DirSegment) (id LogID, name string, ok bool) {
	counts := map[LogID]int{}
	for _, f := range slices.SortedFunc(slices.Values(files), func(a, b *DirSegment) int {
		return cmp.Or(cmp.Compare(a.BaseSeq, b.BaseSeq), cmp.Compare(a.Generation, b.Generation))
	}) {
		if f.Seg == nil {
			continue
		}
		h := f.Seg.Header.LogID
		counts[h]++
		if name == "" || counts[h] > counts[id] {
			id, name = h, f.Name
		}
	}
	return id, name, name != ""
}

// Resolve applies the directory rules to the opened segment files of one
// directory, given in log order (as ReadDir and OpenSegments return them).
// It returns the live segments in log order, the superseded ones (each
// with By set), and the problems it found: *CorruptErrors naming a segment
// whose header disagrees with its name, that belongs to another log, or
// that overlaps another without being wholly covered by a compacted one.
// Nothing is superseded on the word of a segment that has a problem or an
// invalid header, and nothing is to be deleted while there is any problem.
//
// Segments with a problem, and those with Err set, stay in live (so that a
// caller checking the chain of seqs reports what follows from them).
// Resolve does not check the chain of seqs, the sealed state of the
// segments, or their records.
func Resolve(files []*DirSegment) (live, superseded []*DirSegment, problems []error) {
	ref, refName, _ := DirLogID(files)
	valid := make(map[*DirSegment]bool, len(files))
	for _, f := range files {
		if f.Seg == nil {
			continue
		}
		h := f.Seg.Header
		switch {
		case h.LogID != ref:
			problems = append(problems, &CorruptError{File: f.Name, Err: ErrForeign, Reason: fmt.Sprintf(
				"log ID %s differs from the log's %s (%s): a segment of another log", h.LogID, ref, refName)})
		case h.BaseSeq != f.BaseSeq || h.Generation != f.Generation:
			problems = append(problems, &CorruptError{File: f.Name, Reason: fmt.Sprintf(
				"the header says first seq %d, generation %d; the name says first seq %d, generation %d (a copy under another name? remove it if it does not belong here)",
				h.BaseSeq, h.Generation, f.BaseSeq, f.Generation)})
		default:
			valid[f] = true
		}
	}
	// In log order, every segment that could supersede f (a lower or equal
	// first seq, a higher generation) comes before it; cover holds the
	// valid sealed ones seen so far that still reach f's first seq.
	var cover []*DirSegment
	for _, f := range files {
		cover = slices.DeleteFunc(cover, func(p *DirSegment) bool { return p.last() < f.BaseSeq })
		var by *DirSegment
		if valid[f] {
			for _, p := range cover {
				if p.Generation > f.Generation && (by == nil || p.Generation > by.Generation) {
					by = p
				}
			}
		}
		switch {
		case by == nil:
			live = append(live, f)
		case !f.Seg.Sealed || f.last() > by.last():
			problems = append(problems, &CorruptError{File: f.Name, Reason: fmt.Sprintf(
				"overlaps compacted segment %s (seqs %d..%d) without being wholly covered by it", by.Name, by.BaseSeq, by.last())})
			valid[f] = false // reported
			live = append(live, f)
		default:
			f.By = by
			superseded = append(superseded, f)
		}
		if valid[f] && f.Seg.Sealed {
			cover = append(cover, f)
		}
	}
	// Live segments must not overlap.
	for i := 1; i < len(live); i++ {
		p, f := live[i-1], live[i]
		if !valid[p] || !valid[f] {
			continue
		}
		if f.BaseSeq == p.BaseSeq || p.Seg.Sealed && f.BaseSeq <= p.last() {
			problems = append(problems, &CorruptError{File: f.Name, Reason: fmt.Sprintf("overlaps segment %s (which starts at seq %d)", p.Name, p.BaseSeq)})
		}
	}
	return live, superseded, problems
}

// CheckSuperseding verifies, completely, every segment that supersedes one
// of superseded (every frame, the index against the records, the trailer
// against the seqs it claims), so that nothing is deleted on the word of
// a damaged file. Call it before removing superseded segments.
func CheckSuperseding(superseded []*DirSegment) error {
	done := map[*DirSegment]bool{}
	for _, f := range superseded {
		if done[f.By] {
			continue
		}
		done[f.By] = true
		if _, err := Verify(f.By.Seg, math.MinInt64); err != nil {
			return fmt.Errorf("evlog/segment: %s supersedes %s but does not verify (nothing was removed): %w", f.By.Name, f.Name, err)
		}
	}
	return nil
}
