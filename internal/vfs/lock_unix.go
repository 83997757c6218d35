//go:build linux || darwin

package vfs

import (
	"errors"
	"os"
	"syscall"
)

// flock takes an exclusive non-blocking flock on f. A held lock yields an
// error matching ErrLocked.
func flock(f *os.File) error {
	return flockOp(f, syscall.LOCK_EX|syscall.LOCK_NB)
}

// funlock releases the flock on f.
func funlock(f *os.File) error {
	return flockOp(f, syscall.LOCK_UN)
}

func flockOp(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), how)
			if ferr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if errors.Is(ferr, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	return ferr
}
