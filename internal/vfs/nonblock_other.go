//go:build !unix

package vfs

// oNonblock is zero where there are no FIFOs to block on.
const oNonblock = 0

// isNoLinkErr reports whether err says the file system has no hard links.
func isNoLinkErr(error) bool { return false }
