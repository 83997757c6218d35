package segment

import (
	"errors"
	"fmt"
)

// ErrCorrupt is matched (errors.Is) by every error reporting damaged segment
// data: a bad checksum, an impossible length or value, a seq gap, a sealed
// segment that ends uncleanly. evlog never skips such data. Run
// `evlogctl verify DIR` to see every finding, and `evlogctl salvage` to copy
// what is still readable.
var ErrCorrupt = errors.New("evlog/segment: corrupt segment")

// ErrForeign is matched by errors about a segment that belongs to another log
// (its log ID differs from the directory's).
var ErrForeign = errors.New("evlog/segment: segment belongs to another log")

// CorruptError describes damage at one place in one file.
type CorruptError struct {
	File   string // base name of the segment file
	Offset int64  // start of the first invalid frame (or header/trailer field)
	Seq    uint64 // seq of the last valid event before the damage, if known
	Reason string // what is wrong, e.g. "checksum mismatch"
	Err    error  // underlying cause, if any
}

func (e *CorruptError) Error() string {
	msg := fmt.Sprintf("evlog/segment: corrupt segment %s at offset %d: %s", e.File, e.Offset, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg + " (run `evlogctl verify` for details; `evlogctl salvage` copies what is readable)"
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func (e *CorruptError) Unwrap() error { return e.Err }

func corruptf(file string, off int64, format string, args ...any) *CorruptError {
	return &CorruptError{File: file, Offset: off, Reason: fmt.Sprintf(format, args...)}
}
