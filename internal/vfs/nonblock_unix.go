//go:build unix

package vfs

import (
	"errors"
	"syscall"
)

// oNonblock makes opening a FIFO return at once instead of waiting for a
// writer; on regular files it has no effect.
const oNonblock = syscall.O_NONBLOCK

// isNoLinkErr reports whether err says the file system has no hard links.
func isNoLinkErr(err error) bool {
	return errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EMLINK)
}
