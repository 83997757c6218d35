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
