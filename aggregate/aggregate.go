// Package aggregate is the command side of event sourcing: an aggregate
// type's pure definition (initial state, how events change the state, how
// commands decide new events) and a Repository that loads an instance by
// replaying its stream (from a snapshot), runs a command, and appends the
// resulting events with optimistic concurrency, retrying on conflicts.
//
// The definition is pure — no I/O, no context — and usable with no log at
// all (ApplyAll). The Repository does its I/O through small interfaces (Log,
// Snapshots) that *evlog.Log and its snapshot store satisfy, so it never
// depends on the storage engine.
//
// Derived state never silently comes back wrong. After a deletion of an
// instance's stream, its cache and snapshots from before the deletion are
// passed over and it is folded again from its events. When events such a
// stale snapshot folded have expired by retention since, folding again
// would lose their effect: Load, At and Execute then fail with
// replay.ErrHistoryLost (a *replay.HistoryLostError naming the snapshot,
// the deletion and the first expired event), and keep failing, after a
// restart too, until the application either restores the log from a
// backup or calls Repository.Rebuild, which durably accepts the loss and
// folds the events that are left. Nothing goes past the error implicitly.
package aggregate

import (
	"errors"
	"fmt"

	"github.com/evlog/evlog/event"
)

// Definition describes an aggregate type. S is its state, E its event type
// (raw event.Envelope, or a typed event such as evlog.Event[T]).
type Definition[S, E any] struct {
	// Category is required: the category of the aggregate type's streams.
	// Instance id is stored in the stream Category + "-" + id (KurrentDB's
	// convention; event.StreamName), so two aggregate types with the same
	// id never share a stream, and Log.Category reads every instance's
	// events. It must be a valid category (event.CheckCategory: non-empty,
	// printable UTF-8, without "-"); an id may contain "-" (the category
	// is what precedes a stream name's first "-"). Changing it moves every
	// instance to other streams.
	Category string
	// Name is the aggregate type's name in snapshots and logs (default:
	// Category). Snapshots of instance id are stored under the subject
	// Name + "/" + its stream name.
	Name string
	// SchemaVersion is the version of the state's shape and of Apply;
	// bump it when either changes, and old snapshots are ignored.
	SchemaVersion uint64
	// Init returns the state of an instance without events (nil: zero S).
	Init func() S
	// Apply returns the state after one event. It must be pure and
	// deterministic. It may modify and return its input only if Clone is
	// set (the repository then hands Apply private copies).
	Apply func(S, E) S
	// Clone returns a deep copy of a state (nil: states are values that
	// Apply never modifies in place).
	Clone func(S) S
}

// Command decides, from the current state, the events to append (none is
// fine). It must be pure; a non-nil error rejects the command and nothing
// is appended.
type Command[S, E any] func(S) ([]E, error)

// Validate reports whether the definition is usable: an error matching
// event.ErrInvalid names the problem. A Repository of an invalid
// definition fails every call with it.
func (d *Definition[S, E]) Validate() error {
	if err := event.CheckCategory(d.Category); err != nil {
		return fmt.Errorf("evlog/aggregate: definition of %q: %w", d.name(), err)
	}
	return nil
}

// Stream returns the stream name of instance id: Category + "-" + id.
func (d *Definition[S, E]) Stream(id string) string { return event.StreamName(d.Category, id) }

// name is the type's name in snapshot subjects and logs.
func (d *Definition[S, E]) name() string {
	if d.Name != "" {
		return d.Name
	}
	return d.Category
}

// New returns the initial state.
func (d *Definition[S, E]) New() S {
	var s S
	if d.Init != nil {
		s = d.Init()
	}
	return s
}

// ApplyAll applies events to s in order and returns the result: the pure way
// to compute a state, with no log involved.
func (d *Definition[S, E]) ApplyAll(s S, events ...E) S {
	for _, e := range events {
		s = d.Apply(s, e)
	}
	return s
}

// clone copies s if the definition says how.
func (d *Definition[S, E]) clone(s S) S {
	if d.Clone != nil {
		return d.Clone(s)
	}
	return s
}

// Codec converts between the definition's event type and stored envelopes.
type Codec[E any] interface {
	Decode(event.Envelope) (E, error)
	Encode(E) (event.Envelope, error)
}

// RawCodec is the Codec of aggregates over raw envelopes.
type RawCodec struct{}

func (RawCodec) Decode(e event.Envelope) (event.Envelope, error) { return e, nil }
func (RawCodec) Encode(e event.Envelope) (event.Envelope, error) { return e, nil }

// ErrTooManyConflicts is returned by Execute when every attempt lost an
// optimistic-concurrency race; the error also matches
// event.ErrVersionConflict.
var ErrTooManyConflicts = errors.New("evlog/aggregate: command kept conflicting with concurrent writers; retry later")
