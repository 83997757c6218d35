package vfs

import (
	"errors"
	"io"
	"io/fs"
)

// ErrReadOnly is returned by every mutating operation of a ReadOnly FS.
var ErrReadOnly = errors.New("evlog/vfs: read-only: this path must never modify the log directory")

// ReadOnly returns an FS over fs whose reads pass through and whose
// mutating operations (Create, OpenReadWrite, Remove, Rename,
// RenameNoReplace, SyncDir,
// Lock, and File.Write, File.Truncate and File.Sync) fail with an error
// matching ErrReadOnly without reaching fs. It proves that a code path
// never modifies the log directory.
func ReadOnly(fs FS) FS { return readOnly{fs: fs} }

type readOnly struct {
	fs FS
}

func refuse(op, name string) error {
	return &fs.PathError{Op: op, Path: name, Err: ErrReadOnly}
}

func (r readOnly) Create(name string) (File, error) { return nil, refuse("create", name) }

func (r readOnly) Open(name string) (File, error) {
	f, err := r.fs.Open(name)
	if err != nil {
		return nil, err
	}
	return readOnlyFile{File: f, name: name}, nil
}

func (r readOnly) OpenReadWrite(name string) (File, error) { return nil, refuse("open", name) }
func (r readOnly) Remove(name string) error                { return refuse("remove", name) }
func (r readOnly) Rename(oldname, _ string) error          { return refuse("rename", oldname) }
func (r readOnly) List() ([]string, error)                 { return r.fs.List() }
func (r readOnly) Stat(name string) (int64, error)         { return r.fs.Stat(name) }
func (r readOnly) Lstat(name string) (FileInfo, error)     { return r.fs.Lstat(name) }
func (r readOnly) ReadDir() ([]DirEntry, error)            { return r.fs.ReadDir() }
func (r readOnly) RenameNoReplace(oldname, _ string) error { return refuse("rename", oldname) }
func (r readOnly) SyncDir() error                          { return refuse("syncdir", ".") }
func (r readOnly) Lock(name string) (io.Closer, error)     { return nil, refuse("lock", name) }

// readOnlyFile refuses Write, Truncate and Sync.
type readOnlyFile struct {
	File
	name string
}

func (f readOnlyFile) Write([]byte) (int, error) { return 0, refuse("write", f.name) }
func (f readOnlyFile) Truncate(int64) error      { return refuse("truncate", f.name) }
func (f readOnlyFile) Sync() error               { return refuse("sync", f.name) }
