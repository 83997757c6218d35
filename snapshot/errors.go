package snapshot

import (
	"errors"
	"fmt"
)

// ErrCorrupt is matched (errors.Is) by every error reporting a snapshot file
// that cannot be trusted: bad magic or checksum, a truncated or extended
// file, sizes over the caps, a payload that does not decompress to the
// declared size, or a format version this build does not read. Such errors
// are *CorruptError values naming the file. A corrupt snapshot is never
// fatal to replay: it falls back to an older snapshot or to the events.
var ErrCorrupt = errors.New("evlog/snapshot: corrupt snapshot")

// ErrNewerFormat is matched, besides ErrCorrupt, by the *CorruptError of
// a file whose header names a format version, or flags, newer than this
// build reads: a snapshot a newer evlog wrote (before a binary was rolled
// back), or damage this build cannot tell from one. Reads fall back as
// from any corrupt snapshot; Remove refuses to delete such a file.
var ErrNewerFormat = errors.New("evlog/snapshot: snapshot of a newer format")

// ErrNotFound is matched by errors reporting that no snapshot answers a
// request: none of that name at or before the target, or the file is
// missing, or it holds a different snapshot than the Meta asked for.
var ErrNotFound = errors.New("evlog/snapshot: snapshot not found")

// ErrTooLarge is matched by Save's error when the state is larger than
// Options.MaxRawSize (nothing was written), and by the *CorruptError of a
// read of a file whose header declares a state larger than the reader's
// MaxRawSize (which also matches ErrCorrupt; nothing was allocated for
// it): perhaps damage, perhaps a snapshot saved under a higher bound.
var ErrTooLarge = errors.New("evlog/snapshot: state too large")

// ErrExists is matched by Save's error when a snapshot file for that name
// and seq already exists. Nothing was written; the existing file is left
// as it is.
var ErrExists = errors.New("evlog/snapshot: snapshot already exists")

// ErrInvalid is matched by errors about malformed arguments (an empty or
// oversize name, a zero seq or time, bad options or prune policy). Nothing
// was read or written.
var ErrInvalid = errors.New("evlog/snapshot: invalid argument")

// CorruptError reports a corrupt snapshot file. It matches ErrCorrupt.
type CorruptError struct {
	// File is the base name of the snapshot file.
	File string
	// Offset is the byte offset in File where the problem was found (for
	// a file of the wrong length, its length or the declared one).
	Offset int64
	// Reason says what is wrong.
	Reason string
	// Err is the underlying error, if any (for example the decompressor's).
	Err error
	// Newer: the header names a format version or flags newer than this
	// build reads (the error also matches ErrNewerFormat).
	Newer bool
}

func (e *CorruptError) Error() string {
	msg := fmt.Sprintf("evlog/snapshot: corrupt snapshot %s at offset %d: %s", e.File, e.Offset, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg + "; replay falls back to an older snapshot or the events; remove the file or run evlogctl verify"
}

// Is makes errors.Is(err, ErrCorrupt) true, and errors.Is(err,
// ErrNewerFormat) for a newer format.
func (e *CorruptError) Is(target error) bool {
	return target == ErrCorrupt || target == ErrNewerFormat && e.Newer
}

// Unwrap returns the underlying error.
func (e *CorruptError) Unwrap() error { return e.Err }

// invalidf returns an error matching ErrInvalid.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
