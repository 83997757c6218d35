package evlog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/segment"
)

// Retention bounds how long the events of one category are kept: events
// beyond either bound read as gone at once, and Compact removes their
// payloads. See Options.Retention.
type Retention struct {
	// MaxAge: events recorded more than MaxAge before Options.Clock() read
	// as gone. 0: no bound.
	MaxAge time.Duration
	// MaxCount: only the newest MaxCount events of each stream of the
	// category are read. 0: no bound.
	MaxCount int
}

// validateRetention checks Options.Retention.
func validateRetention(r map[string]Retention) error {
	var errs []error
	for _, cat := range slices.Sorted(maps.Keys(r)) {
		x := r[cat]
		if cat == "" || strings.Contains(cat, CategorySeparator) || strings.HasPrefix(cat, SystemTypePrefix) {
			errs = append(errs, fmt.Errorf("Retention: %q is not a category (non-empty, without %q, not starting with %q)", cat, CategorySeparator, SystemTypePrefix))
		}
		if x.MaxAge < 0 || x.MaxCount < 0 {
			errs = append(errs, fmt.Errorf("Retention[%q]: MaxAge %v and MaxCount %d must not be negative", cat, x.MaxAge, x.MaxCount))
		}
		if x.MaxAge == 0 && x.MaxCount == 0 {
			errs = append(errs, fmt.Errorf("Retention[%q]: set MaxAge or MaxCount (or remove the entry)", cat))
		}
	}
	return errors.Join(errs...)
}

// Recorded retention (see docs/FORMAT.md, "Deletion and retention").
//
// The retention of a log is a record in it, so that every process reading
// or compacting the log applies the same settings: an event of the system
// stream RetentionStream, of type TypeRetention, whose Data (msgpack)
// holds the whole settings, every category:
//
//	$retention {categories: {CAT: {max_age: NANOSECONDS, max_count: N}}}
//
// The newest record visible in a view is the log's retention in that
// view; none recorded is no retention. A writer opened with a non-nil
// Options.Retention that differs from it appends a new one during Open
// (recordRetention). Like a deletion marker, a record is an ordinary
// event: one commit frame, crash recovery, backups and followers copy it,
// and compaction never redacts it (it is in a system stream).

// Reserved names of recorded retention.
const (
	// RetentionStream is the system stream holding the log's retention
	// records.
	RetentionStream = event.RetentionStream
	// TypeRetention is the type of a retention record.
	TypeRetention = "$retention"
)

// ErrRetentionMismatch is matched by the error of OpenReadOnly given a
// non-nil Options.Retention that differs from the retention the log
// records. The error is a *RetentionMismatchError.
var ErrRetentionMismatch = errors.New("evlog: Options.Retention differs from the retention the log records")

// RetentionMismatchError reports a read-only open whose Options.Retention
// is not the log's.
type RetentionMismatchError struct {
	// Recorded is the retention the log records (nil: none), Given the
	// Options.Retention of the open.
	Recorded, Given map[string]Retention
	// Seq is the seq of the newest record (0: none).
	Seq uint64
}

func (e *RetentionMismatchError) Error() string {
	return fmt.Sprintf("%v: the log records %s (seq %d), the options give %s; a reader applies what the log records: open it with a nil Options.Retention, or change the log's retention by opening its writer with the new settings",
		ErrRetentionMismatch, formatRetention(e.Recorded), e.Seq, formatRetention(e.Given))
}

// Unwrap returns ErrRetentionMismatch.
func (e *RetentionMismatchError) Unwrap() error { return ErrRetentionMismatch }

// ErrRetentionUnknown is matched by the error of every read of a log whose
// newest retention record is of a type this version of evlog does not
// interpret (written by a later version): it cannot tell which events
// read as gone. Upgrade evlog to read the log.
var ErrRetentionUnknown = errors.New("evlog: the log records retention of a kind this version of evlog does not know; upgrade evlog to read it")

// formatRetention formats retention settings in category order.
func formatRetention(r map[string]Retention) string {
	if len(r) == 0 {
		return "no retention"
	}
	var b strings.Builder
	for i, cat := range slices.Sorted(maps.Keys(r)) {
		if i > 0 {
			b.WriteString(", ")
		}
		x := r[cat]
		fmt.Fprintf(&b, "%s:", cat)
		if x.MaxAge > 0 {
			fmt.Fprintf(&b, " MaxAge %v", x.MaxAge)
		}
		if x.MaxCount > 0 {
			fmt.Fprintf(&b, " MaxCount %d", x.MaxCount)
		}
	}
	return b.String()
}

// sameRetention reports whether a and b are the same settings (nil and
// empty are both no retention).
func sameRetention(a, b map[string]Retention) bool {
	return maps.Equal(a, b)
}

// retentionData is the Data of a retention record. Never change the
// field names: they are the format.
type retentionData struct {
	Categories map[string]retentionEntry `msgpack:"categories"`
}

type retentionEntry struct {
	MaxAge   int64 `msgpack:"max_age,omitempty"` // nanoseconds
	MaxCount int64 `msgpack:"max_count,omitempty"`
}

// encodeRetention returns the Data of a record of r.
func encodeRetention(r map[string]Retention) ([]byte, error) {
	d := retentionData{Categories: make(map[string]retentionEntry, len(r))}
	for cat, x := range r {
		d.Categories[cat] = retentionEntry{MaxAge: int64(x.MaxAge), MaxCount: int64(x.MaxCount)}
	}
	return msgpack.Marshal(&d)
}

// decodeRetention decodes a retention record's Data (untrusted bytes from
// disk, bounded as deletion markers are: decodeMarker) into valid
// settings (nil: no retention).
func decodeRetention(data []byte) (map[string]Retention, error) {
	if err := segment.CheckMsgpack(data); err != nil {
		return nil, err
	}
	var d retentionData
	if err := msgpack.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	if len(d.Categories) == 0 {
		return nil, nil
	}
	r := make(map[string]Retention, len(d.Categories))
	for cat, x := range d.Categories {
		if x.MaxCount > math.MaxInt32 {
			return nil, fmt.Errorf("category %q: MaxCount %d out of range", cat, x.MaxCount)
		}
		r[cat] = Retention{MaxAge: time.Duration(x.MaxAge), MaxCount: int(x.MaxCount)}
	}
	if err := validateRetention(r); err != nil {
		return nil, err
	}
	return r, nil
}

// badRetention returns the corruption of retention record e, whose Data
// does not decode to valid settings (err): every read of the log fails
// with it, as it cannot tell which events read as gone. File and Offset
// are left to the caller, which knows the record's frame.
func badRetention(e *Envelope, err error) *segment.CorruptError {
	return &segment.CorruptError{Seq: e.Seq - 1, Reason: fmt.Sprintf("retention record at seq %d does not decode: %v", e.Seq, err)}
}

// retentionTable is the fold of RetentionStream up to seq: its newest
// record. It is immutable once published.
type retentionTable struct {
	seq     uint64               // every record with seq <= seq is folded
	version uint64               // version of RetentionStream folded
	last    uint64               // seq of the newest record (0: none)
	ret     map[string]Retention // the newest record's settings (nil: none)
	// unknown: the newest record is of a type this version does not
	// interpret; every read fails with ErrRetentionUnknown.
	unknown string
}

// retentions guards the log's current retention table.
type retentions struct {
	mu sync.Mutex
	t  *retentionTable
}

// retentionAt returns a retention table folding at least every record
// visible in (v, pub) (a newer one when the log's table is ahead of the
// view: retention is never older than the view's).
func (l *Log) retentionAt(ctx context.Context, v *view, pub published) (*retentionTable, error) {
	l.rets.mu.Lock()
	defer l.rets.mu.Unlock()
	t := l.rets.t
	if t == nil {
		t = &retentionTable{}
	}
	if t.seq >= pub.seq {
		return t, nil
	}
	nt := *t
	nt.seq = pub.seq
	err := l.scanStreamIn(ctx, v, pub, RetentionStream, t.version+1, t.seq, func(e *Envelope) error {
		nt.version, nt.last = e.Version, e.Seq
		if e.Type != TypeRetention {
			nt.ret, nt.unknown = nil, e.Type
			return nil
		}
		r, err := decodeRetention(e.Data)
		if err != nil {
			return badRetention(e, err) // scanStreamIn names the file and the frame's offset
		}
		nt.ret, nt.unknown = r, ""
		return nil
	})
	if err != nil {
		return nil, err
	}
	l.rets.t = &nt
	return &nt, nil
}

// settings returns the table's retention, failing when the newest record
// is of an unknown type.
func (t *retentionTable) settings() (map[string]Retention, error) {
	if t.unknown != "" {
		return nil, fmt.Errorf("%w (record of type %q at seq %d)", ErrRetentionUnknown, t.unknown, t.last)
	}
	return t.ret, nil
}

// RecordedRetention returns the retention the log records as visible now
// (nil: none, every event is kept) and the seq of the record (0: none).
// Every reader and compaction of the log applies it (see
// Options.Retention). The map is the caller's.
func (l *Log) RecordedRetention(ctx context.Context) (map[string]Retention, uint64, error) {
	v, pub, err := l.acquire()
	if err != nil {
		return nil, 0, err
	}
	defer v.unref()
	t, err := l.retentionAt(ctx, v, pub)
	if err != nil {
		return nil, 0, err
	}
	r, err := t.settings()
	return maps.Clone(r), t.last, err
}

// checkRetention applies Options.Retention at Open (see its doc): a
// writer given settings that differ from the recorded ones records them
// durably; a read-only log given such settings fails with a
// *RetentionMismatchError.
func (l *Log) checkRetention(ctx context.Context) error {
	want := l.opts.Retention
	if want == nil {
		return nil
	}
	got, seq, err := l.RecordedRetention(ctx)
	if err != nil {
		if !l.readOnly && errors.Is(err, ErrRetentionUnknown) {
			// A later version's record: replacing it with ours would
			// silently change what it meant.
			return fmt.Errorf("evlog: recording Options.Retention: %w", err)
		}
		return err
	}
	if sameRetention(got, want) {
		return nil
	}
	if l.readOnly {
		return &RetentionMismatchError{Recorded: got, Given: maps.Clone(want), Seq: seq}
	}
	return l.recordRetention(ctx, want)
}

// recordRetention appends a record of r to RetentionStream and makes it
// durable (also under SyncNever), with the mark that lets readers in
// other processes serve it.
func (l *Log) recordRetention(ctx context.Context, r map[string]Retention) error {
	data, err := encodeRetention(r)
	if err != nil {
		return err
	}
	// The record is configuration, not an event of the application's
	// timeline: it carries the log's last recorded time (the Unix epoch in
	// an empty log), so that it never moves that time forward and events
	// appended with their own past times after it (an import of history)
	// are not refused with ErrTimeBackwards.
	at := l.LastTime()
	if at.IsZero() {
		at = time.Unix(0, 0).UTC()
	}
	batch := []AppendRequest{{Stream: RetentionStream, Expect: ExpectAny, Events: []Envelope{{Type: TypeRetention, Time: at, Data: data}}}}
	size, n, ids, err := l.checkBatch(batch)
	if err != nil {
		return err
	}
	req := &request{batch: batch, size: size, events: n, noIDs: !ids, done: make(chan struct{})}
	if err := l.w.submit(ctx, req); err != nil {
		return fmt.Errorf("evlog: recording Options.Retention: %w", err)
	}
	if err := l.syncMarked(ctx); err != nil {
		return fmt.Errorf("evlog: recording Options.Retention: making the record durable: %w", err)
	}
	return nil
}
