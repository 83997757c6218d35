package snapshot

import (
	"fmt"
	"time"
)

// Meta describes one snapshot: whose state it is, of which log, as of which
// event, and how big it is.
type Meta struct {
	// Name is the subject: an aggregate instance ("cart/cart-42"), a
	// projection ("projection/top-items"), a whole-log fold ("stats").
	// Non-empty UTF-8, at most MaxNameLen bytes.
	Name string
	// LogID identifies the log the snapshot belongs to. The store records
	// and returns it; checking it against the log is the caller's job.
	LogID [16]byte
	// Seq is the global seq of the last event folded into the state; ≥ 1.
	Seq uint64
	// Time is that event's recorded time, kept in UTC with nanosecond
	// precision (between the years 1678 and 2262).
	Time time.Time
	// SchemaVersion is the owner's version (or a hash) of the state's
	// shape and fold logic; the owner changes it when either changes, and
	// ignores snapshots of another version.
	SchemaVersion uint64
	// RawSize is the size of the state in bytes; CompressedSize the size
	// of its zstd frame. Set by the Store.
	RawSize, CompressedSize int64
	// File is the base name of the file holding the snapshot. Set by the
	// Store.
	File string
}

func (m Meta) String() string {
	return fmt.Sprintf("%q@%d", m.Name, m.Seq)
}

// checkMeta checks the caller-supplied fields of m for Save.
func checkMeta(m *Meta) error {
	if err := checkName(m.Name); err != nil {
		return err
	}
	switch {
	case m.Seq == 0:
		return invalidf("snapshot %q has seq 0; it must be the seq of the last event folded in", m.Name)
	case m.Time.IsZero():
		return invalidf("snapshot %q at seq %d has no time; it must be the time of the last event folded in", m.Name, m.Seq)
	case m.Time.Before(minTime) || m.Time.After(maxTime):
		return invalidf("snapshot %q time %v is outside the years 1678 to 2262", m.Name, m.Time)
	}
	return nil
}
