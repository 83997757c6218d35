package vfs

// lockedError is returned by Lock implementations when the lock is held. It
// names the lock file and matches ErrLocked.
type lockedError struct {
	path string
}

func (e *lockedError) Error() string {
	return "evlog/vfs: " + e.path + ": locked by another writer (is another process using this log?)"
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *lockedError) Is(target error) bool { return target == ErrLocked }

// lockLostError is returned by CheckLock when the locked file is no longer
// the file its name refers to. It matches ErrLockLost.
type lockLostError struct {
	path string
	why  string
}

func (e *lockLostError) Error() string {
	return "evlog/vfs: " + e.path + " " + e.why + " while locked: another writer may have locked the new file (the lock file must never be removed)"
}

// Is makes errors.Is(err, ErrLockLost) true.
func (e *lockLostError) Is(target error) bool { return target == ErrLockLost }
