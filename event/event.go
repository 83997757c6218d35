// Package event holds the vocabulary shared by every layer of evlog: the
// event envelope, stream positions and append expectations, and the errors
// that cross layer boundaries (a version conflict is raised by the log and
// handled by the aggregate repository).
//
// The package imports only the standard library and knows nothing about how
// envelopes are stored; the on-disk codec lives in package segment.
package event

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Envelope is one event as stored in the log: the fields the log assigns
// (Seq, Version, Time), the fields the caller supplies (Stream, Type,
// SchemaVersion, ID, Meta) and the payload Data, which holds the
// msgpack-encoded body of the event.
//
// Envelopes handed out by the log are copies: the caller owns them, including
// Meta and Data, and nothing in evlog modifies them afterwards. Envelopes
// passed to Append are read, never retained or modified.
type Envelope struct {
	// Seq is the event's global position: 1-based and contiguous across the
	// whole log. Assigned by the log; leave zero when appending.
	Seq uint64
	// Stream names the stream (aggregate instance, entity, …) the event
	// belongs to. Non-empty, at most MaxStreamLen bytes, printable UTF-8
	// (ValidName: no control, line separator or bidirectional formatting
	// characters). By convention "category-id" (see Log.Category).
	Stream string
	// Version is the event's 1-based position within its stream. Assigned
	// by the log; leave zero when appending.
	Version uint64
	// Type names what happened, e.g. "item_added". Non-empty, at most
	// MaxTypeLen bytes, printable UTF-8 (ValidName).
	Type string
	// SchemaVersion is the version of the payload's shape for this Type.
	// Zero when appending means DefaultSchemaVersion.
	SchemaVersion uint32
	// ID is an optional caller-supplied identifier, at most MaxIDLen
	// bytes, unique in the log: appends are idempotent by ID (evlog's
	// Log.Append, "Idempotency": an append all of whose IDs the log holds,
	// with the same content, is a retry and writes nothing; any other
	// reuse of an ID is refused). Empty: never deduplicated.
	ID string
	// Time is the recorded time, always UTC. When appending, a zero Time
	// is stamped from the log's clock; a set Time is kept as given, but it
	// may not be earlier than the log's last recorded time.
	Time time.Time
	// Meta is a small string map (correlation and causation IDs, user
	// agent, …), bounded by MaxMetaEntries, MaxMetaKeyLen, MaxMetaValueLen.
	Meta map[string]string
	// Data is the msgpack-encoded payload.
	Data []byte
}

// Limits on the caller-supplied envelope fields. They are part of the file
// format contract: a record that exceeds them is rejected as corrupt.
const (
	MaxStreamLen    = 1024
	MaxTypeLen      = 256
	MaxIDLen        = 256
	MaxMetaEntries  = 32
	MaxMetaKeyLen   = 128
	MaxMetaValueLen = 4096
)

// DefaultSchemaVersion is the schema version of a payload whose appender did
// not set one.
const DefaultSchemaVersion = 1

// Clone returns a deep copy of e: mutating the copy's Meta or Data never
// affects e.
func (e Envelope) Clone() Envelope {
	e.Meta = maps.Clone(e.Meta)
	if e.Data != nil {
		e.Data = slices.Clone(e.Data)
	}
	return e
}

// ValidateFields checks the caller-supplied fields of e against the limits
// above, and its stream name and type against ValidName. It does not look
// at Seq, Version or Time. Appends call it; reads do not (a stored name is
// read as it is).
func (e *Envelope) ValidateFields() error { return e.validate(nil, true) }

// ValidateLimits is ValidateFields without the name rule: it checks that
// the stream name and type are non-empty and within their length limits,
// and the ID and Meta limits, but not ValidName. The limits have applied
// since the first format version; the name rule has not (an older evlog
// stored names holding any bytes, see docs/FORMAT.md "Names"). It is for
// events copied as they are from an existing log (evlogctl salvage);
// appends of new events use ValidateFields.
func (e *Envelope) ValidateLimits() error { return e.validate(nil, false) }

// ValidateFieldsAfter is ValidateFields for an event following prev, an
// event whose fields passed ValidateFields: a stream name or type equal to
// prev's is not scanned again. A batch of one stream and one type thus
// checks its names once, not once per event.
func (e *Envelope) ValidateFieldsAfter(prev *Envelope) error { return e.validate(prev, true) }

// validate checks the limits, and, if names, the name rule (for a stream
// name and type differing from prev's, when prev is not nil).
func (e *Envelope) validate(prev *Envelope, names bool) error {
	switch {
	case e.Stream == "":
		return fmt.Errorf("%w: empty stream name", ErrInvalid)
	case len(e.Stream) > MaxStreamLen:
		return fmt.Errorf("%w: stream name is %d bytes, the limit is %d", ErrInvalid, len(e.Stream), MaxStreamLen)
	case e.Type == "":
		return fmt.Errorf("%w: empty event type (stream %q)", ErrInvalid, e.Stream)
	case len(e.Type) > MaxTypeLen:
		return fmt.Errorf("%w: event type is %d bytes, the limit is %d", ErrInvalid, len(e.Type), MaxTypeLen)
	case len(e.ID) > MaxIDLen:
		return fmt.Errorf("%w: event ID is %d bytes, the limit is %d", ErrInvalid, len(e.ID), MaxIDLen)
	case len(e.Meta) > MaxMetaEntries:
		return fmt.Errorf("%w: %d meta entries, the limit is %d", ErrInvalid, len(e.Meta), MaxMetaEntries)
	}
	if names && (prev == nil || e.Stream != prev.Stream) {
		if err := checkName("stream name", e.Stream); err != nil {
			return err
		}
	}
	if names && (prev == nil || e.Type != prev.Type) {
		if err := checkName("event type", e.Type); err != nil {
			return err
		}
	}
	for k, v := range e.Meta {
		if len(k) > MaxMetaKeyLen || len(v) > MaxMetaValueLen {
			return fmt.Errorf("%w: meta entry %.40q is too long (key limit %d, value limit %d bytes)",
				ErrInvalid, k, MaxMetaKeyLen, MaxMetaValueLen)
		}
	}
	return nil
}

// Position identifies an appended event: its global Seq, its Version
// within its stream, and the Time the log recorded for it.
type Position struct {
	Seq     uint64
	Version uint64
	Time    time.Time
}
