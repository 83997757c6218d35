package event

import (
	"errors"
	"fmt"
)

// Expectation is the optimistic-concurrency condition an append places on
// the current version of its stream. The zero value is ExpectNoStream.
type Expectation int64

const (
	// ExpectAny appends whatever the stream's current version is.
	ExpectAny Expectation = -1
	// ExpectNoStream appends only if the stream has no events yet.
	ExpectNoStream Expectation = 0
)

// ExpectVersion appends only if the stream's current version (the Version of
// its last event) is exactly v. ExpectVersion(0) is ExpectNoStream.
func ExpectVersion(v uint64) Expectation {
	if v > 1<<62 {
		// Unreachable in practice; keeps the conversion lossless and never
		// collides with ExpectAny.
		v = 1 << 62
	}
	return Expectation(v)
}

// Check reports whether a stream at version current satisfies e.
func (e Expectation) Check(current uint64) bool {
	if e == ExpectAny {
		return true
	}
	return e >= 0 && uint64(e) == current
}

func (e Expectation) String() string {
	switch {
	case e == ExpectAny:
		return "any version"
	case e == ExpectNoStream:
		return "no stream"
	case e > 0:
		return fmt.Sprintf("version %d", int64(e))
	}
	return fmt.Sprintf("invalid expectation %d", int64(e))
}

// Valid reports whether e is ExpectAny, ExpectNoStream or an ExpectVersion.
func (e Expectation) Valid() bool { return e >= ExpectAny }

// ErrVersionConflict is matched (errors.Is) by every error reporting that a
// stream was not at the version an append expected. Nothing of the append
// was written; reload the stream and decide again.
var ErrVersionConflict = errors.New("evlog: version conflict")

// ErrInvalid is matched by errors about malformed input to an append (empty
// stream or type, oversize fields, …). Nothing was written.
var ErrInvalid = errors.New("evlog: invalid event")

// ConflictError reports an optimistic-concurrency conflict on one stream.
type ConflictError struct {
	Stream   string
	Expected Expectation
	Actual   uint64 // the stream's current version (0: no stream)
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("evlog: version conflict on stream %q: expected %s, stream is at version %d; reload and retry",
		e.Stream, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrVersionConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrVersionConflict }
