// Package copyhook gives evlogctl salvage what the root package keeps
// unexported: appending events copied from an existing log as they are.
// An older evlog accepted event types starting with "$", reserved for
// evlog since; such events are the user's data, and a copy of the log must
// carry them over instead of failing. Normal appends (Append, AppendBatch,
// typed appends) keep refusing them. The root package sets AppendBatch in
// its init; nothing outside the module can import this package.
//
// The values are untyped because this package cannot import the root:
// AppendBatch takes a *evlog.Log and a []evlog.AppendRequest and returns
// a []evlog.Position.
package copyhook

import "context"

// AppendBatch is evlog's Log.AppendBatch without the reservation of
// event types starting with "$". Every other check applies: system
// streams ("$$") and tombstoned streams are refused.
var AppendBatch func(ctx context.Context, l any, batch any) (any, error)
