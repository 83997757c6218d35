// Package testhook gives the module's own test packages (fuzz/) what the
// root package keeps unexported: opening a log on any vfs.FS, such as an
// in-memory one, so that a fuzz input costs microseconds rather than the
// fsyncs of a real directory. The root package sets the functions in its
// init; nothing outside the module can import this package.
//
// The values are untyped because this package cannot import the root:
// Open and OpenReadOnly take an evlog.Options and return a *evlog.Log,
// Verify returns an evlog.VerifyReport.
package testhook

import (
	"context"

	"github.com/evlog/evlog/internal/vfs"
)

var (
	// Open is evlog.Open on fsys.
	Open func(fsys vfs.FS, opts any) (any, error)
	// OpenReadOnly is evlog.OpenReadOnly on fsys.
	OpenReadOnly func(fsys vfs.FS, opts any) (any, error)
	// Verify is evlog.Verify on fsys.
	Verify func(ctx context.Context, fsys vfs.FS) (any, error)
	// SetFrameLimit (set by package segment) lowers the payload bound
	// readers accept for footer frames, the zmap and zblocks (normally
	// segment.MaxFramePayload) to n, until restore is called: tests reach
	// the bound with kilobytes rather than gigabytes. Not for parallel
	// tests.
	SetFrameLimit func(n int64) (restore func())
)
