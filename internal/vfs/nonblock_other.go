//go:build !unix

package vfs

import (
	"errors"
	"os"
)

// oNonblock is zero where there are no FIFOs to block on.
const oNonblock = 0

// isNoLinkErr reports whether err says the file system has no hard links.
func isNoLinkErr(error) bool { return false }

// plainDir is not needed here: ReadDir lists d itself.
func plainDir(*os.File) (*os.File, error) { return nil, errors.ErrUnsupported }
