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
	"fmt"
	"io"
	"io/fs"
)

// FS is a flat directory.
//
// Durability contract (what the engine relies on, and what Mem models):
// data written to a File is durable only once File.Sync returns nil; a
// created, renamed or removed directory entry is durable only once SyncDir
// returns nil after it. Rename replaces the target atomically.
//
// Only regular files are ever opened: Create, Open and OpenReadWrite refuse
// a name that is a symbolic link, FIFO, device, socket or directory with an
// error matching ErrNotRegular, without blocking (a FIFO is never opened
// for reading) and without changing what the name points to.
type FS interface {
	// Create creates name (truncating it if it exists) and opens it for
	// reading and writing at offset 0.
	Create(name string) (File, error)
	// Open opens an existing regular file read-only.
	Open(name string) (File, error)
	// OpenReadWrite opens an existing regular file for reading and writing
	// with the offset at 0 (Seek to the end before appending).
	OpenReadWrite(name string) (File, error)
	// Remove deletes name. Open handles keep working (POSIX unlink).
	Remove(name string) error
	// Rename atomically renames oldname to newname, replacing newname.
	Rename(oldname, newname string) error
	// List returns the names in the directory, sorted.
	List() ([]string, error)
	// Stat returns the size of name, or an error matching fs.ErrNotExist.
	Stat(name string) (size int64, err error)
	// Lstat describes name without following a symbolic link (its type is
	// that of the link itself), or fails with an error matching
	// fs.ErrNotExist.
	Lstat(name string) (FileInfo, error)
	// ReadDir returns every entry of the directory, sorted by name, with
	// its type as Lstat would report it: unlike List it includes
	// subdirectories. It reads no sizes (no stat per entry where the
	// directory itself records types).
	ReadDir() ([]DirEntry, error)
	// RenameNoReplace renames oldname to newname like Rename, except that
	// it never replaces an existing newname: it then fails with an error
	// matching fs.ErrExist and changes nothing.
	RenameNoReplace(oldname, newname string) error
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

// FileInfo describes a directory entry without following symbolic links.
type FileInfo struct {
	Name string
	// Mode holds the entry's type bits (fs.ModeType); zero for a regular
	// file.
	Mode fs.FileMode
	// Size is the size of a regular file (otherwise meaningless).
	Size int64
}

// Regular reports whether the entry is a regular file.
func (i FileInfo) Regular() bool { return i.Mode.Type() == 0 }

// DirEntry is a name in the directory and its type, as ReadDir lists it.
type DirEntry struct {
	Name string
	// Mode holds the entry's type bits (fs.ModeType), not following
	// symbolic links; zero for a regular file.
	Mode fs.FileMode
}

// Regular reports whether the entry is a regular file.
func (e DirEntry) Regular() bool { return e.Mode.Type() == 0 }

// ErrNotRegular is matched by the error of an FS that was asked to open a
// name that is not a regular file (a symbolic link, FIFO, device, socket or
// directory).
var ErrNotRegular = errors.New("evlog/vfs: not a regular file")

// notRegular returns the error for op on path, whose type is mode.
func notRegular(op, path string, mode fs.FileMode) error {
	return &fs.PathError{Op: op, Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, typeName(mode))}
}

// typeName names the type of mode for messages.
func typeName(mode fs.FileMode) string {
	switch t := mode.Type(); {
	case t == 0:
		return "regular file"
	case t&fs.ModeSymlink != 0:
		return "symbolic link"
	case t&fs.ModeDir != 0:
		return "directory"
	case t&fs.ModeNamedPipe != 0:
		return "FIFO"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeDevice != 0:
		return "device"
	default:
		return "special file"
	}
}

// TypeName names the type of a FileInfo's Mode ("regular file", "symbolic
// link", "FIFO", …), for messages.
func TypeName(mode fs.FileMode) string { return typeName(mode) }

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
