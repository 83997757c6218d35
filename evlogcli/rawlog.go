package evlogcli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// The raw reader reads a log's segments frame by frame, without the log's
// indexes, so that it can read past damage: dump falls back to it when the
// log cannot be opened (to print the valid prefix), and salvage uses it to
// copy what is still readable. The frame-level work (validating frames as
// the normal reader does, resynchronising after damage, grouping committed
// batches, telling torn tails from corruption) is segment.Salvage; this
// file only walks the directory. It only reads (it is given a read-only
// FS).

// rawBatch is one complete, committed batch of a segment file.
type rawBatch struct {
	file string
	segment.Batch
}

// rawGap is a region of a segment file from which no complete batch could
// be read.
type rawGap struct {
	file string
	segment.Gap
	// excluded: the whole file was left out (rawVisitor.owned); Gap's
	// FirstSeq..LastSeq are then the seqs of its batches, if read.
	excluded exclusion
}

// rawVisitor receives what the raw reader finds, in file order. Returning
// errStop ends the scan without an error.
type rawVisitor struct {
	batch func(*rawBatch) error
	gap   func(*rawGap) error
	// owned: read only the segments that can be taken for the log's own
	// (vetSegment, salvage_foreign.go); each of the others is one gap of
	// the whole file with excluded set, and none of its batches is
	// delivered.
	owned bool
}

var errStop = errors.New("stop")

// scanRaw reads every live segment of fsys in log order.
func scanRaw(ctx context.Context, fsys vfs.FS, v rawVisitor) error {
	files, logID, err := rawSegments(fsys)
	if err != nil {
		return err
	}
	// A torn tail can only be in the newest segment, or in the one before
	// it when a crash during a roll left a newest segment without a batch
	// and without a mark (one is written there only once the seal before
	// it was fsynced: evlog's recovery rules).
	tornOK := map[string]bool{}
	if n := len(files); n > 0 {
		tornOK[files[n-1].name] = true
		if n > 1 && !anyCommit(fsys, files[n-1].name) && !anyMark(fsys, files[n-1].name) {
			tornOK[files[n-2].name] = true
		}
	}
	var seen uint64 // the highest seq of a batch delivered
	visit := v
	visit.batch = func(b *rawBatch) error {
		seen = max(seen, b.Events[len(b.Events)-1].Seq)
		return v.batch(b)
	}
	for i, f := range files {
		if v.owned {
			g, err := vetSegment(ctx, fsys, files, i, logID, seen, tornOK[f.name])
			if err != nil {
				return err
			}
			if g != nil {
				err = v.gap(g)
				if errors.Is(err, errStop) {
					return nil
				}
				if err != nil {
					return err
				}
				continue
			}
		}
		err := scanRawFile(ctx, fsys, f.name, tornOK[f.name], visit)
		if errors.Is(err, errStop) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// rawFile is a live segment file of the raw reader.
type rawFile struct {
	segment.DirFile
	name string
	// hdrOK: its header decodes; logID is then the log ID it holds.
	hdrOK bool
	logID segment.LogID
}

// rawSegments lists the live segment files in log order, by the
// directory rules of package segment (segment.Resolve): regular files
// only, leaving out those superseded by a valid compacted segment, and
// returns the log's ID (segment.DirLogID; logID.ok is false when no
// segment has a valid header). Stray copies and segments of other logs
// stay in the list (the raw reader reports what it finds in them, or,
// with rawVisitor.owned, leaves them out; verify names them).
//
// A listing holding a restore's or a salvage's marker is refused, as the
// library's readers refuse it (rawMarked): the raw reader runs after an
// open that failed, and a restore or salvage may have begun writing into
// the directory since.
func rawSegments(fsys vfs.FS) ([]rawFile, rawLogID, error) {
	dir, err := segment.ReadDir(fsys)
	if err != nil {
		return nil, rawLogID{}, err
	}
	if err := rawMarked(dir.Other); err != nil {
		return nil, rawLogID{}, err
	}
	files, err := segment.OpenSegments(fsys, dir.Segments)
	if err != nil {
		return nil, rawLogID{}, err
	}
	defer segment.CloseSegments(files)
	var id rawLogID
	id.id, id.name, id.ok = segment.DirLogID(files)
	live, superseded, _ := segment.Resolve(files)
	live = intactInputs(live, superseded)
	out := make([]rawFile, len(live))
	for i, f := range live {
		out[i] = rawFile{DirFile: f.DirFile, name: f.Name}
		if f.Seg != nil {
			out[i].hdrOK, out[i].logID = true, f.Seg.Header.LogID
		} else if h, err := readHeader(fsys, f.Name); err == nil {
			out[i].hdrOK, out[i].logID = true, h.LogID // the trailer is what is damaged
		}
	}
	return out, id, nil
}

// rawMarked fails as the library's readers do (evlog's restoreMarked,
// which is not exported) when names, a listing of the directory, hold
// evlog.RestoreMarker or evlog.SalvageMarker or the temporary of either:
// with an error matching evlog.ErrRestoreIncomplete or
// evlog.ErrSalvageIncomplete, and the same message. The directory then
// holds part of a restore or salvage, not a log: none of its files is
// read, and nothing in it is damage of the log.
func rawMarked(names []string) error {
	for _, n := range names {
		switch n {
		case evlog.RestoreMarker, evlog.RestoreMarker + ".tmp":
			return fmt.Errorf("%w: the directory holds %s: a restore into it did not finish; run the restore again (it starts over), or remove the directory", evlog.ErrRestoreIncomplete, n)
		case evlog.SalvageMarker, evlog.SalvageMarker + ".tmp":
			return fmt.Errorf("%w: the directory holds %s: evlogctl salvage into it did not finish, and it holds only part of what the salvage copies; run the salvage again (it starts over), or remove the directory", evlog.ErrSalvageIncomplete, n)
		}
	}
	return nil
}

// rawLogID is the log's ID by the directory rules, and the segment it
// was taken from.
type rawLogID struct {
	id   segment.LogID
	name string
	ok   bool
}

// readHeader reads and decodes the header of the segment file name.
func readHeader(fsys vfs.FS, name string) (segment.Header, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return segment.Header{}, err
	}
	defer f.Close()
	var b [segment.HeaderSize]byte
	if n, err := f.ReadAt(b[:], 0); n < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return segment.Header{}, err
	}
	return segment.DecodeHeader(b[:])
}

// intactInputs replaces, in live, each compacted segment that supersedes
// segments still present (a compaction stopped between its commit and the
// removal of its inputs) and does not verify, by those inputs, when they
// cover all of its seqs: they hold the same events, undamaged by what
// damaged the copy. A writer's open refuses such a log (it removes the
// inputs only once the compacted segment verifies); salvage then copies
// from the inputs instead of losing what the damage hides.
func intactInputs(live, superseded []*segment.DirSegment) []*segment.DirSegment {
	inputs := map[*segment.DirSegment][]*segment.DirSegment{}
	for _, f := range superseded {
		inputs[f.By] = append(inputs[f.By], f)
	}
	if len(inputs) == 0 {
		return live
	}
	var out []*segment.DirSegment
	for _, f := range live {
		in := inputs[f]
		if len(in) == 0 || f.Seg == nil {
			out = append(out, f)
			continue
		}
		if _, err := segment.Verify(f.Seg, math.MinInt64); err == nil {
			out = append(out, f)
			continue
		}
		// A chain of inputs from f's first seq to its last, the highest
		// generation first where several start at one seq.
		slices.SortFunc(in, func(a, b *segment.DirSegment) int {
			return cmp.Or(cmp.Compare(a.BaseSeq, b.BaseSeq), cmp.Compare(b.Generation, a.Generation))
		})
		var chain []*segment.DirSegment
		next := f.BaseSeq
		for _, s := range in {
			if s.BaseSeq == next {
				chain = append(chain, s)
				next = s.Seg.Trailer.LastSeq + 1
			}
		}
		if next != f.Seg.Trailer.LastSeq+1 {
			out = append(out, f) // some inputs are gone already: read what f holds
			continue
		}
		out = append(out, chain...)
	}
	return out
}

// anyCommit reports whether the file holds at least one valid commit frame.
func anyCommit(fsys vfs.FS, name string) bool {
	f, err := fsys.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return false
	}
	ok, err := segment.HasCommit(f, segment.HeaderSize, size)
	return err == nil && ok
}

// anyMark reports whether the segment file name holds a valid mark frame
// (one its header's mark key authenticates).
func anyMark(fsys vfs.FS, name string) bool {
	f, err := fsys.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil || size <= segment.HeaderSize {
		return false
	}
	var hb [segment.HeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		return false
	}
	h, err := segment.DecodeHeader(hb[:])
	if err != nil || h.Version < 2 {
		return false
	}
	off, _, err := segment.ProvesDurable(f, h, segment.HeaderSize-1, size, 0)
	return err == nil && off >= 0
}

// scanRawFile reads one segment file.
func scanRawFile(ctx context.Context, fsys vfs.FS, name string, tornOK bool, v rawVisitor) error {
	f, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return err
	}
	return segment.Salvage(ctx, f, size, segment.SalvageOptions{
		Name:   name,
		TornOK: tornOK,
		Batch:  func(b *segment.Batch) error { return v.batch(&rawBatch{file: name, Batch: *b}) },
		Gap:    func(g *segment.Gap) error { return v.gap(&rawGap{file: name, Gap: *g}) },
	})
}
