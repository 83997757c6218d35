//go:build unix

package vfs

import (
	"errors"
	"os"
	"syscall"
)

// oNonblock makes opening a FIFO return at once instead of waiting for a
// writer; on regular files it has no effect.
const oNonblock = syscall.O_NONBLOCK

// isNoLinkErr reports whether err says the file system has no hard links.
func isNoLinkErr(err error) bool {
	return errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EMLINK)
}

// plainDir returns a second descriptor of the directory d, opened through
// an os.Root, as a File that is not "in a root": since Go 1.26 ReadDir on
// a File opened in a Root lstats every entry as it lists it, while on any
// other File it takes the type from the directory entry (d_type) and
// lstats, relative to the directory's descriptor, only the entries whose
// type the file system does not record. A listing then costs one
// getdents(2) instead of one fstatat(2) per file. The descriptor refers
// to the directory d refers to, whatever happened to its path since.
func plainDir(d *os.File) (*os.File, error) {
	rc, err := d.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd := -1
	var dupErr error
	err = rc.Control(func(fd uintptr) {
		syscall.ForkLock.RLock() // no fork between dup and close-on-exec
		defer syscall.ForkLock.RUnlock()
		if nfd, dupErr = syscall.Dup(int(fd)); dupErr == nil {
			syscall.CloseOnExec(nfd)
		}
	})
	if err == nil {
		err = dupErr
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(nfd), d.Name()), nil
}
