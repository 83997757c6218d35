package jetstream

import (
	"context"
	"errors"
	"fmt"

	"github.com/evlog/evlog/event"
)

// ErrHoles is matched by the error of a Copy whose source has holes in
// its seqs (or records of evlog's system streams: deletion markers, the
// log's retention settings): see HolesError.
var ErrHoles = errors.New("evlog/jetstream: copy: the source has events that read as gone; its seqs cannot be preserved")

// HolesError reports that Copy refused a source whose seqs have holes:
// events that read as gone (deleted by DeleteStream, TruncateStream or
// TombstoneStream, or beyond Options.Retention; compacted or not), which
// the file log's reads skip without renumbering the rest. A target
// assigns seqs contiguously, so every event after a hole would land at
// another seq than the source's (and streams after a truncation at other
// versions), invalidating every snapshot, checkpoint and subscription
// position that names one; and the records of evlog's system streams
// mean nothing to a JetStream log, which never deletes: deletion markers
// (evlog.DeletionsStream) and the log's retention settings
// (evlog.RetentionStream, recorded by a writer opened with
// Options.Retention: the copy would keep for ever what the source lets
// expire). Copy checks the whole source before it appends anything.
type HolesError struct {
	// Seq is the first seq of the source, from 1, that holds no visible
	// event, or (Marker) the seq of its first record of a system stream.
	Seq uint64
	// Marker: Seq holds a record of the system stream Stream (a deletion
	// marker, or the log's retention settings).
	Marker bool
	Stream string
	// Last is the source's last seq, Events its events through Last.
	Last, Events uint64
	// Resumed is the target's last seq: events it holds from an earlier
	// Copy, which may include events the source has deleted since.
	Resumed uint64
}

func (e *HolesError) Error() string {
	what := fmt.Sprintf("seq %d holds no event (deleted, truncated, tombstoned or expired)", e.Seq)
	if e.Marker {
		what = fmt.Sprintf("seq %d holds a record of %s (deletion markers and the log's retention settings are applied by a file log only)", e.Seq, e.Stream)
	}
	msg := fmt.Sprintf("evlog/jetstream: copy: %s; the source holds %d events through seq %d: "+
		"the target numbers events contiguously, so the copy would not keep their seqs and versions (every snapshot, checkpoint and subscription position naming one), nor the deletions; ",
		what, e.Events, e.Last)
	if e.Resumed > 0 {
		msg += fmt.Sprintf("the target holds %d events copied earlier, which may include events deleted since: delete the target; ", e.Resumed)
	} else {
		msg += "nothing was copied; "
	}
	return msg + "keep the file log, or copy a renumbered copy of it (evlogctl salvage, which drops what is gone) and rebuild every snapshot, checkpoint and subscription position on the target"
}

// Is reports whether target is ErrHoles.
func (e *HolesError) Is(target error) bool { return target == ErrHoles }

// checkHoles returns a *HolesError if src has no event at some seq in
// [1, last] or holds a record of a system stream there (the first of
// either). It
// reads the whole source and appends nothing, so that Copy refuses such
// a source before it writes.
func checkHoles(ctx context.Context, src CopySource, last, resumed uint64) error {
	var (
		he     *HolesError
		events uint64
	)
	for e, err := range src.Range(ctx, 1, last) {
		if err != nil {
			return fmt.Errorf("evlog/jetstream: copy: reading the source: %w", err)
		}
		switch {
		case he != nil:
		case e.Seq != events+1:
			he = &HolesError{Seq: events + 1}
		case event.IsSystemStream(e.Stream):
			he = &HolesError{Seq: e.Seq, Marker: true, Stream: e.Stream}
		}
		events++
	}
	if he == nil && events < last {
		he = &HolesError{Seq: events + 1}
	}
	if he == nil {
		return nil
	}
	he.Last, he.Events, he.Resumed = last, events, resumed
	return he
}
