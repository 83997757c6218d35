package evlog

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// Readers beside a writer. A read-only open, Refresh and Verify list the
// directory, then open and read the files they found, while a writer in
// another process may move on between the two: a roll creates segment N+1
// and then seals N, a compaction renames its output into place and then
// removes its inputs. A reader can therefore catch a state that looks
// damaged (a file that vanished, a sealed newest segment with no
// successor) but is only half of a step the writer is taking. The rule:
// a failure is reported only when it persists across a stable listing,
// that is when the segment files were the same before and after the
// attempt — the same names, and every segment but the newest the same
// size (a roll seals segment N in place, then appends to N+1: an attempt
// that opened N before the seal and N+1 after the append sees an unsealed
// segment that is not the newest, under an unchanged listing); otherwise
// the attempt is retried, a bounded number of times.

// besideWriterAttempts bounds the retries of one read beside a writer:
// with the pauses between them (at most 16 ms each) about a second of a
// writer changing the directory under every attempt. An attempt that met
// no change answers at once, so the bound only decides how long a reader
// keeps up with a writer that rolls or compacts faster than it reads; on
// a loaded machine, where the reader may be descheduled for tens of
// milliseconds inside one attempt, 20 attempts (270 ms) was short.
const besideWriterAttempts = 64

// errDirChanging is wrapped around the last failure when the directory
// kept changing across every attempt.
var errDirChanging = errors.New("the log directory kept changing while it was read (a writer rolling or compacting very fast?); try again")

// segmentNames is the names of d's segment files, in log order.
func segmentNames(d *segment.Dir) []string {
	names := make([]string, len(d.Segments))
	for i, f := range d.Segments {
		names[i] = f.Name
	}
	return names
}

// olderSizes returns the sizes of d's segment files but the newest (ok
// false if one vanished or cannot be read): a sealed segment never
// changes size, the one being sealed does.
func olderSizes(fsys vfs.FS, d *segment.Dir) (_ []int64, ok bool) {
	if len(d.Segments) == 0 {
		return nil, true
	}
	sizes := make([]int64, len(d.Segments)-1)
	for i, f := range d.Segments[:len(d.Segments)-1] {
		size, err := fsys.Stat(f.Name)
		if err != nil {
			return nil, false
		}
		sizes[i] = size
	}
	return sizes, true
}

// besideWriter runs attempt until it succeeds, or fails across a stable
// listing of fsys (then its failure is the answer), or
// besideWriterAttempts attempts were made. Each attempt gets the listing
// taken just before it, which it may use instead of listing the
// directory again. failed reports whether an attempt's outcome is a
// failure (an error, or a report of damage); a missing file is always
// retried. A first failure is always retried: the sizes of the segments
// are taken only from the second attempt on, so that an attempt that
// succeeds costs no stat per segment. attempt must modify nothing.
func besideWriter[T any](fsys vfs.FS, attempt func(before *segment.Dir) (T, error), failed func(T, error) bool) (T, error) {
	var res T
	var err error
	for i := range besideWriterAttempts {
		before, lerr := segment.ReadDir(fsys)
		if lerr != nil {
			return res, lerr
		}
		// A restore writing into the directory: not a log yet (nor
		// damage), whatever the attempt would find.
		if err := restoreMarked(before.Other); err != nil {
			return res, err
		}
		var sizes []int64
		sized := false
		if i > 0 {
			sizes, sized = olderSizes(fsys, before)
		}
		res, err = attempt(before)
		if !failed(res, err) {
			return res, err
		}
		after, lerr := segment.ReadDir(fsys)
		if lerr != nil {
			return res, lerr
		}
		if sized && slices.Equal(segmentNames(before), segmentNames(after)) && !errors.Is(err, fs.ErrNotExist) {
			if now, ok := olderSizes(fsys, after); ok && slices.Equal(sizes, now) {
				return res, err // the same files before and after: real
			}
		}
		time.Sleep(time.Duration(1<<min(i, 4)) * time.Millisecond)
	}
	if err != nil {
		err = fmt.Errorf("evlog: %w: %w", errDirChanging, err)
	}
	return res, err
}

// recoverBesideWriter is a read-only recoverDir that a writer in another
// process may be changing (see besideWriter). It recovers from the
// listing besideWriter took, not a second one.
func recoverBesideWriter(fsys vfs.FS, log *slog.Logger) (*recovered, error) {
	return besideWriter(fsys, func(dir *segment.Dir) (*recovered, error) {
		return recoverListed(fsys, dir, log, true)
	}, func(_ *recovered, err error) bool { return err != nil })
}

// durablePrefix cuts x, the index of a newest segment scanned to its end
// with opts, down to what a reader in another process serves (a writer's
// own reads are current). When the last mark is strict (its writer runs
// SyncAlways, acknowledging appends only once durable), or there is no
// mark yet and the header has FlagStrict: the batches a mark records as
// durable. A mark is written after
// each fsync of the newest segment and before the appends it covers
// return, so such a reader never serves an event before it is durable and
// acknowledged. When the last mark is not strict (SyncInterval,
// SyncNever: appends are acknowledged once written), every committed
// batch. Segments of format version 1 carry no marks: their committed
// batches are served. r is the scan of the whole segment with opts; the
// result's Infos, when opts.CollectInfos is set, are those of the prefix.
func durablePrefix(s *segment.Segment, name string, r segment.ScanResult, opts segment.ScanOptions) (segment.ScanResult, error) {
	x := r.Index
	// Past the durable end there is at most the mark that records it
	// unless a batch (an event and a commit frame, more than a mark) was
	// committed after it.
	strict := x.Strict
	if !x.Marked {
		strict = s.Header.Flags&segment.FlagStrict != 0
	}
	if s.Header.Version < 2 || !strict || x.End-x.Durable < minBatchBytes {
		return r, nil
	}
	if opts.Continue == nil {
		opts.Checkpoint = x.Base() // the checkpoint proves its prefix durable
	}
	d, err := segment.Scan(s.File(), s.Header, x.Durable, opts)
	if err != nil {
		return segment.ScanResult{}, fmt.Errorf("evlog: %s: reading its durable prefix: %w", name, err)
	}
	return d, nil
}

// minBatchBytes is less than any batch takes: a commit frame alone.
const minBatchBytes = segment.FrameHeaderSize + 20
