package vfs

import (
	"fmt"
	"io/fs"
	"strings"
)

// errBadName is the cause of every rejected name. It matches fs.ErrInvalid.
var errBadName = fmt.Errorf("not a base name in the log directory: %w", fs.ErrInvalid)

// checkName reports whether name is a valid base name for an FS: non-empty,
// without '/' or '\\', and neither "." nor "..". The error is an
// *fs.PathError for op whose cause matches fs.ErrInvalid.
func checkName(op, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return &fs.PathError{Op: op, Path: name, Err: errBadName}
	}
	return nil
}
