// Package vfs is the filesystem seam evlog writes and reads through.
//
// An FS is one flat directory: every name passed to it is a base name inside
// that directory (no separators). The engine keeps segments, snapshots, the
// LOCK file and temporaries side by side in the log directory, so this is all
// it needs, and it makes it impossible to touch anything outside it.
//
// Implementations:
//   - OS: the real directory, opened through os.Root; Sync is fsync (on macOS
//     Go's os.File.Sync issues F_FULLFSYNC), SyncDir fsyncs the directory,
//     Lock is an exclusive non-blocking flock.
//   - Mem: an in-memory directory that models what survives a power loss
//     (unsynced data and unsynced directory entries), for crash tests.
//   - Counting: a wrapper that counts operations and bytes per file.
//   - Faulty: a wrapper that injects errors (EIO, ENOSPC, short writes).
package vfs

import (
	"errors"
	"io"
)

// FS is a flat directory.
//
// Durability contract (what the engine relies on, and what Mem models):
// data written to a File is durable only once File.Sync returns nil; a
// created, renamed or removed directory entry is durable only once SyncDir
// returns nil after it. Rename replaces the target atomically.
type FS interface {
	// Create creates name (truncating it if it exists) and opens it for
	// reading and writing at offset 0.
	Create(name string) (File, error)
	// Open opens an existing file read-only.
	Open(name string) (File, error)
	// OpenReadWrite opens an existing file for reading and writing with the
	// offset at 0 (Seek to the end before appending).
	OpenReadWrite(name string) (File, error)
	// Remove deletes name. Open handles keep working (POSIX unlink).
	Remove(name string) error
	// Rename atomically renames oldname to newname, replacing newname.
	Rename(oldname, newname string) error
	// List returns the names in the directory, sorted.
	List() ([]string, error)
	// Stat returns the size of name, or an error matching fs.ErrNotExist.
	Stat(name string) (size int64, err error)
	// SyncDir makes the directory's entries durable.
	SyncDir() error
	// Lock takes an exclusive, non-blocking lock on name (creating it). It
	// fails at once with an error matching ErrLocked when the lock is held,
	// by this or another process. Closing the returned Closer releases it;
	// the lock dies with the process.
	Lock(name string) (io.Closer, error)
}

// File is an open file. ReadAt may be called concurrently with anything;
// the other methods must not be called concurrently with each other.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Seeker
	io.Closer
	// Sync makes the file's data durable (fsync; F_FULLFSYNC on macOS).
	Sync() error
	// Truncate changes the size of the file; the offset is unchanged.
	Truncate(size int64) error
	// Size returns the current size of the file.
	Size() (int64, error)
}

// ErrLocked is returned by Lock when the lock is already held.
var ErrLocked = errors.New("evlog/vfs: locked by another writer")

// ErrLockLost is returned by CheckLock when the lock file was removed or
// replaced while the lock was held: the lock no longer excludes anyone, as
// a second Lock of the name locks a different file.
var ErrLockLost = errors.New("evlog/vfs: the lock file was removed or replaced while locked")

// LockChecker is implemented by the locks (the Closers returned by
// FS.Lock) that can tell whether they still guard the name they were taken
// on. OS and Mem locks implement it.
type LockChecker interface {
	// CheckLock returns nil if the locked file is still the file the lock's
	// name refers to, an error matching ErrLockLost if the name was removed
	// or now refers to another file, or another error if it cannot tell.
	CheckLock() error
}

// CheckLock checks lock (as returned by FS.Lock) with its CheckLock method;
// a lock that does not implement LockChecker is assumed to hold.
func CheckLock(lock io.Closer) error {
	if c, ok := lock.(LockChecker); ok {
		return c.CheckLock()
	}
	return nil
}
