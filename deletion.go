package evlog

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/event"
)

// Stream deletion (see docs/FORMAT.md, "Deletion and retention").
//
// A deletion is an ordinary event appended to the system stream
// DeletionsStream, so it shares everything an append has: one commit
// frame, the SyncMode's durability, crash recovery, backups and
// followers. Its Type says what it does and its Data (msgpack) names the
// stream:
//
//	$deleted   {stream, before}  soft delete: versions below before (the
//	                             stream's version + 1 when it was deleted)
//	                             read as gone; the stream may be written
//	                             again from that version on
//	$truncate  {stream, before}  versions below before read as gone
//	$tombstone {stream}          hard delete: every version reads as gone
//	                             and appends fail with ErrStreamDeleted
//
// Readers fold these markers into a deletion table (deletionTable) that
// they consult for every event; the table is built on first use by
// reading DeletionsStream through the stream index (one bloom-filtered
// look-up per sealed segment, never a scan of the log), and extended
// incrementally from the segments holding seqs beyond what it folded.
// Compact then rewrites the gone events of sealed segments as redacted
// placeholders (TypeRedacted, no Meta or Data) with the same seq,
// stream, version, time and ID, so no surviving event is renumbered,
// every index stays valid and a retry of their append is still
// recognised (placeholderOf).

// Reserved names. Streams starting with SystemStreamPrefix and event
// types starting with SystemTypePrefix belong to evlog: appends using
// them fail with ErrInvalid.
const (
	SystemStreamPrefix = event.SystemStreamPrefix
	SystemTypePrefix   = "$"
	// DeletionsStream is the system stream holding deletion markers.
	DeletionsStream = event.DeletionsStream
	// Marker types (see the package comment of deletion.go and
	// docs/FORMAT.md).
	TypeDeleted   = "$deleted"
	TypeTruncate  = "$truncate"
	TypeTombstone = "$tombstone"
	// TypeRedacted is the type of the placeholder Compact writes in place
	// of a gone event. Readers never yield placeholders.
	TypeRedacted = "$redacted"
)

// ErrStreamDeleted is matched by the error of an append to, or a delete
// of, a stream that was hard-deleted (TombstoneStream). The error is a
// *StreamDeletedError.
var ErrStreamDeleted = errors.New("evlog: the stream is deleted (tombstoned)")

// StreamDeletedError names the tombstoned stream of a failed append.
type StreamDeletedError struct {
	Stream string
	Seq    uint64 // seq of the tombstone marker
}

func (e *StreamDeletedError) Error() string {
	return fmt.Sprintf("%v: stream %q was hard-deleted (tombstone at seq %d); it can never be written again: use another stream name", ErrStreamDeleted, e.Stream, e.Seq)
}

// Unwrap returns ErrStreamDeleted.
func (e *StreamDeletedError) Unwrap() error { return ErrStreamDeleted }

// checkNotDeleted fails with a *StreamDeletedError when one of the
// streams is tombstoned (as committed now; the writer checks again while
// sequencing, deletion_writer.go), and with ErrInvalid when one is a
// system stream.
func (l *Log) checkNotDeleted(ctx context.Context, streams iter.Seq[string]) error {
	var t *deletionTable
	for s := range streams {
		if strings.HasPrefix(s, SystemStreamPrefix) {
			return reservedStreamError(s)
		}
		if t == nil {
			v, pub, err := l.acquire()
			if err != nil {
				return err
			}
			t, err = l.deletionsAt(ctx, v, pub)
			v.unref()
			if err != nil {
				return err
			}
		}
		if st, ok := t.m[s]; ok && st.tomb {
			return &StreamDeletedError{Stream: s, Seq: st.seq}
		}
	}
	return nil
}

func reservedStreamError(s string) error {
	return fmt.Errorf("%w: stream %q: names starting with %q are reserved for evlog's system streams", ErrInvalid, s, SystemStreamPrefix)
}

// checkReservedType fails with ErrInvalid when typ is a system type.
func checkReservedType(stream, typ string) error {
	if strings.HasPrefix(typ, SystemTypePrefix) {
		return fmt.Errorf("%w: event type %q of stream %q: types starting with %q are reserved for evlog", ErrInvalid, typ, stream, SystemTypePrefix)
	}
	return nil
}

// DeleteStream soft-deletes stream: its events up to its current version
// v read as gone at once (Stream, StreamBackward, Events, Category,
// Subscribe, typed views, Streams) and Compact later removes their
// payloads. The stream may be written again: the next append gets version
// v+1 (StreamVersion still reports v, so ExpectVersion(v) works), and
// only the events from v+1 on are read. It returns the position of the
// deletion marker (an event of DeletionsStream) and v.
//
// The version is read when DeleteStream is called: an event appended to
// the stream concurrently, after that read, survives. Use TruncateStream
// with an explicit version to delete exactly what was seen. Deleting a
// stream without events writes nothing and returns a zero Position; a
// tombstoned stream fails with ErrStreamDeleted.
func (l *Log) DeleteStream(ctx context.Context, stream string) (Position, uint64, error) {
	ver, err := l.StreamVersion(ctx, stream)
	if err != nil {
		return Position{}, 0, err
	}
	if ver == 0 {
		return Position{}, 0, l.checkNotDeleted(ctx, slices.Values([]string{stream}))
	}
	pos, err := l.appendMarker(ctx, TypeDeleted, marker{Stream: stream, Before: ver + 1})
	return pos, ver, err
}

// TruncateStream makes the versions of stream below before read as gone
// (at once; Compact later removes their payloads). before may be at most
// the stream's version + 1 (which deletes every event, as DeleteStream
// does); a truncation at or below an earlier one changes nothing but is
// recorded. It returns the position of the marker.
func (l *Log) TruncateStream(ctx context.Context, stream string, before uint64) (Position, error) {
	ver, err := l.StreamVersion(ctx, stream)
	if err != nil {
		return Position{}, err
	}
	if before == 0 || before > ver+1 {
		return Position{}, fmt.Errorf("%w: truncating stream %q before version %d: it has %d events (give 1..%d)", ErrInvalid, stream, before, ver, ver+1)
	}
	return l.appendMarker(ctx, TypeTruncate, marker{Stream: stream, Before: before})
}

// TombstoneStream hard-deletes stream: every event of it reads as gone at
// once, Compact later removes their payloads, and every later append to
// it fails with ErrStreamDeleted (a *StreamDeletedError). It cannot be
// undone. Appends are checked in the order the writer sequences them: one
// sequenced before the tombstone succeeds (its events then read as gone
// with the rest), one after fails, even in the same group commit. It
// returns the position of the marker.
func (l *Log) TombstoneStream(ctx context.Context, stream string) (Position, error) {
	return l.appendMarker(ctx, TypeTombstone, marker{Stream: stream})
}

// appendMarker appends one deletion marker to DeletionsStream.
func (l *Log) appendMarker(ctx context.Context, typ string, mk marker) (Position, error) {
	if l.readOnly {
		return Position{}, ErrReadOnly
	}
	if mk.Stream == "" || strings.HasPrefix(mk.Stream, SystemStreamPrefix) {
		return Position{}, fmt.Errorf("%w: cannot delete stream %q", ErrInvalid, mk.Stream)
	}
	if err := l.checkNotDeleted(ctx, slices.Values([]string{mk.Stream})); err != nil {
		return Position{}, err
	}
	data, err := msgpack.Marshal(&mk)
	if err != nil {
		return Position{}, err
	}
	batch := []AppendRequest{{Stream: DeletionsStream, Expect: ExpectAny, Events: []Envelope{{Type: typ, Data: data}}}}
	size, n, ids, err := l.checkBatch(batch)
	if err != nil {
		return Position{}, err
	}
	r := &request{batch: batch, size: size, events: n, noIDs: !ids, done: make(chan struct{})}
	if err := l.w.submit(ctx, r); err != nil {
		return Position{}, err
	}
	return r.pos[0], nil
}

// Deletion describes the deletion state of one stream: what Deletions
// lists.
type Deletion struct {
	Stream string
	// Kind is the type of the last marker: TypeDeleted, TypeTruncate or
	// TypeTombstone.
	Kind string
	// Before: versions below it read as gone (0: none).
	Before uint64
	// Tombstoned: every version reads as gone and appends fail.
	Tombstoned bool
	// Seq is the seq of the last marker.
	Seq uint64
}

// Deletions returns the deletion state of every stream that was deleted,
// truncated or tombstoned, in name order, as visible now (retention is
// not listed: see RecordedRetention).
func (l *Log) Deletions(ctx context.Context) ([]Deletion, error) {
	v, pub, err := l.acquire()
	if err != nil {
		return nil, err
	}
	defer v.unref()
	t, err := l.deletionsAt(ctx, v, pub)
	if err != nil {
		return nil, err
	}
	out := make([]Deletion, 0, len(t.m))
	for _, s := range slices.Sorted(maps.Keys(t.m)) {
		st := t.m[s]
		out = append(out, Deletion{Stream: s, Kind: st.kind, Before: st.before, Tombstoned: st.tomb, Seq: st.seq})
	}
	return out, nil
}

// LastDeletionSeq returns the seq of the newest deletion marker visible
// now (0: none). A snapshot or checkpoint that folded events up to a seq
// below it may hold data of events deleted since: see
// docs/FORMAT.md, "Deletion and retention".
func (l *Log) LastDeletionSeq(ctx context.Context) (uint64, error) {
	v, pub, err := l.acquire()
	if err != nil {
		return 0, err
	}
	defer v.unref()
	t, err := l.deletionsAt(ctx, v, pub)
	if err != nil {
		return 0, err
	}
	return t.last, nil
}

// LastDeletionIn returns the seq of the newest deletion marker visible now
// of a stream for which in returns true (0: none), and that stream. A
// marker of a type this version does not interpret may have deleted
// events of any stream: it counts for every in, with stream "". Only the
// newest marker of each stream is kept (the deletion table), which is
// all the question needs: a snapshot or checkpoint of the streams in
// folded up to a seq below it may hold data of events deleted since; one
// of other streams only is not affected. It implements
// replay.ScopedDeletions.
func (l *Log) LastDeletionIn(ctx context.Context, in func(stream string) bool) (uint64, string, error) {
	v, pub, err := l.acquire()
	if err != nil {
		return 0, "", err
	}
	defer v.unref()
	t, err := l.deletionsAt(ctx, v, pub)
	if err != nil {
		return 0, "", err
	}
	seq, stream := t.unknown, ""
	for s, st := range t.m {
		if st.seq > seq && in(s) {
			seq, stream = st.seq, s
		}
	}
	return seq, stream, nil
}

// checkBatchDeleted is checkNotDeleted for a raw batch, which also may not
// use system event types, unless it is copied from an existing log
// (copied: an older evlog accepted them, see internal/copyhook).
//
// A copied batch may also hold retention records (RetentionStream events of
// TypeRetention whose Data decodes to valid settings: checkCopiedRetention),
// so that a copy of a log keeps its retention; nothing else of a system
// stream.
func (l *Log) checkBatchDeleted(ctx context.Context, batch []AppendRequest, copied bool) error {
	for _, req := range batch {
		switch {
		case !copied:
			for i := range req.Events {
				if err := checkReservedType(req.Stream, req.Events[i].Type); err != nil {
					return err
				}
			}
		case req.Stream == RetentionStream:
			// The other types were accepted when written.
			if err := checkCopiedRetention(req); err != nil {
				return err
			}
		}
	}
	return l.checkAppendDeleted(ctx, func(yield func(string) bool) {
		for _, req := range batch {
			if copied && req.Stream == RetentionStream {
				continue // checked above
			}
			if !yield(req.Stream) {
				return
			}
		}
	})
}

// checkCopiedRetention fails with ErrInvalid unless every event of req, a
// copied request for RetentionStream, is a retention record whose Data
// decodes to valid settings.
func checkCopiedRetention(req AppendRequest) error {
	for i := range req.Events {
		e := &req.Events[i]
		if e.Type != TypeRetention {
			return fmt.Errorf("%w: copying event type %q into %s: only retention records (%s) can be copied there", ErrInvalid, e.Type, RetentionStream, TypeRetention)
		}
		if _, err := decodeRetention(e.Data); err != nil {
			return fmt.Errorf("%w: copying a retention record: its Data does not decode: %v", ErrInvalid, err)
		}
	}
	return nil
}

// checkAppendDeleted is checkNotDeleted for an append's streams: when the
// writer knows the log holds no tombstone (none committed, none staged),
// it only checks that no stream is a system stream, without the
// deletion table and a look-up per stream.
func (l *Log) checkAppendDeleted(ctx context.Context, streams iter.Seq[string]) error {
	if !l.w.tombs.none.Load() {
		return l.checkNotDeleted(ctx, streams)
	}
	for s := range streams {
		if strings.HasPrefix(s, SystemStreamPrefix) {
			return reservedStreamError(s)
		}
	}
	return nil
}

// checkTypedDeleted is checkBatchDeleted for a typed batch, whose
// events' types checkTyped checked (checkReservedType) as it built their
// envelopes.
func (l *Log) checkTypedDeleted(ctx context.Context, src batchSource) error {
	return l.checkAppendDeleted(ctx, func(yield func(string) bool) {
		for i := range src.parts() {
			stream, _, _ := src.part(i)
			if !yield(stream) {
				return
			}
		}
	})
}

// DeletedBefore returns the version of stream below which its events read
// as gone by DeleteStream or TruncateStream, or by retention (see
// retainedBefore in anchor.go) (0: none), as visible now. A soft-deleted
// stream's next version is DeletedBefore. It implements
// replay.StreamDeletions.
func (l *Log) DeletedBefore(ctx context.Context, stream string) (uint64, error) {
	v, pub, err := l.acquire()
	if err != nil {
		return 0, err
	}
	defer v.unref()
	t, err := l.deletionsAt(ctx, v, pub)
	if err != nil {
		return 0, err
	}
	kept, err := l.retainedBefore(ctx, v, pub, stream)
	if err != nil {
		return 0, err
	}
	return max(t.m[stream].before, kept), nil
}
