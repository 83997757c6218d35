// Package evlogtest is a conformance suite for evlog backends: any log that
// serves the consumer-side interfaces (replay.Source, aggregate.Log,
// projection.Source) and a snapshot store (aggregate.Snapshots) can run
//
//	func TestConformance(t *testing.T) {
//		evlogtest.Run(t, func(t *testing.T) evlogtest.Backend { ... a new, empty log ... })
//	}
//
// and so check that aggregate.Repository, projection.Runner and replay
// will behave on it as they do on the file log: appends and the positions
// they return, optimistic concurrency (ExpectVersion, ExpectNoStream,
// ExpectAny; exactly one winner per race), atomic multi-stream batches,
// stream versions, SeqAt over non-decreasing recorded times, Range and
// Stream bounds, Subscribe (history, then live, with no gap and no
// duplicate), and snapshots (save, candidates, load, prune, and replay's
// fallbacks past unusable ones).
//
// The suite depends only on the standard library and go-cmp, plus the
// interfaces of this module; it is deterministic (no sleeps, no wall-clock
// bounds): every wait is on an event the suite itself causes. A wait that
// would block for ever if that event never came (a subscriber's next
// event, the writer it waits on, a racing append) is bounded by a hang
// guard of two minutes, far longer than anything takes on a loaded
// machine: a backend that loses an event fails the check with a message
// saying what never came, instead of hanging until go test's -timeout.
package evlogtest

import (
	"context"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
)

// Log is what the suite exercises: the consumer-side reads and Subscribe
// (projection.Source, which includes replay.Source), Append (as
// aggregate.Log) and AppendBatch, the atomic multi-stream append.
//
// Contracts checked beyond the interfaces' own documentation:
//   - Append and AppendBatch assign Seq (contiguous from 1, in commit
//     order) and Version (contiguous per stream from 1), and return the
//     position of each request's last event.
//   - A failed expectation is an error matching evlog.ErrVersionConflict
//     and writes nothing; so is an invalid event (evlog.ErrInvalid),
//     including a stream or type name that is not printable UTF-8
//     (event.ValidName).
//   - A zero Time is stamped by the log, never earlier than the last
//     recorded time; an explicit Time earlier than it is refused with
//     evlog.ErrTimeBackwards. A zero SchemaVersion is stored as 1.
type Log interface {
	projection.Source
	Append(ctx context.Context, stream string, expect event.Expectation, events ...event.Envelope) (event.Position, error)
	AppendBatch(ctx context.Context, batch []evlog.AppendRequest) ([]event.Position, error)
}

// Backend is one new, empty log under test and its snapshot store.
type Backend struct {
	Log       Log
	Snapshots aggregate.Snapshots
}

// NewBackend returns a new, empty log (and its snapshot store) for one
// test; it registers its own clean-up with t.Cleanup.
type NewBackend func(t *testing.T) Backend
