// Package copyhook gives evlogctl salvage what the root package keeps
// unexported: appending events copied from an existing log as they are.
// An older evlog accepted event types starting with "$", reserved for
// evlog since, and stream names and event types holding any bytes
// (control characters, line separators, bidirectional formatting
// characters, invalid UTF-8), refused since by the name rule
// (event.ValidName, docs/FORMAT.md "Names"). Such events are the user's
// data, and a copy of the log must carry them over instead of failing.
// Normal appends (Append, AppendBatch, typed appends) keep refusing them.
// The root package sets AppendBatch in its init; nothing outside the
// module can import this package.
//
// The values are untyped because this package cannot import the root:
// AppendBatch takes a *evlog.Log and a []evlog.AppendRequest and returns
// a []evlog.Position; Open takes an internal/vfs.FS (untyped too: this
// package imports nothing of the module) and an evlog.Options and returns
// a *evlog.Log.
package copyhook

import "context"

// AppendBatch is evlog's Log.AppendBatch without the reservation of
// event types starting with "$" and without the name rule
// (event.ValidName): names are checked against the limits that always
// applied (event.Envelope.ValidateLimits: non-empty, within the length
// limits). Every other check applies: system streams ("$$") and
// tombstoned streams are refused.
var AppendBatch func(ctx context.Context, l any, batch any) (any, error)

// Open is evlog.Open of the directory fsys (which the caller keeps and
// closes after the log): evlogctl salvage opens the new log through a
// view of NEWDIR that does not show its SALVAGING marker, which it writes
// before the log is created (and Open refuses a directory holding it).
var Open func(fsys any, opts any) (any, error)

// DecodesRetention reports whether data, a retention record's Data
// (docs/FORMAT.md, "Recorded retention"), decodes to valid settings as
// every evlog read decodes it; NoRetention is the Data of a record of no
// retention. evlogctl salvage judges the records it copies with them,
// rather than with a copy of the rule that could drift from it.
var (
	DecodesRetention func(data []byte) bool
	NoRetention      func() []byte
)
