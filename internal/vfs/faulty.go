package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"sync/atomic"
	"syscall"
)

// OpKind is the kind of an operation seen by an Injector.
type OpKind int

// Mutating kinds come first; each mutating operation through a Faulty gets
// the next Op.Index.
const (
	OpCreate   OpKind = iota // FS.Create
	OpWrite                  // File.Write
	OpSync                   // File.Sync
	OpTruncate               // File.Truncate
	OpRemove                 // FS.Remove
	OpRename                 // FS.Rename and FS.RenameNoReplace
	OpSyncDir                // FS.SyncDir

	OpOpen // FS.Open and FS.OpenReadWrite
	OpRead // File.Read and File.ReadAt
	OpList // FS.List and FS.ReadDir
	OpStat // FS.Stat and FS.Lstat
	OpLock // FS.Lock
)

var opKindNames = [...]string{
	OpCreate: "create", OpWrite: "write", OpSync: "sync", OpTruncate: "truncate",
	OpRemove: "remove", OpRename: "rename", OpSyncDir: "syncdir",
	OpOpen: "open", OpRead: "read", OpList: "list", OpStat: "stat", OpLock: "lock",
}

func (k OpKind) String() string {
	if k >= 0 && int(k) < len(opKindNames) {
		return opKindNames[k]
	}
	return fmt.Sprintf("OpKind(%d)", int(k))
}

// Mutating reports whether operations of kind k modify the directory or a
// file (and so advance Op.Index).
func (k OpKind) Mutating() bool { return k >= OpCreate && k <= OpSyncDir }

// Op describes an operation about to be performed through a Faulty.
type Op struct {
	Kind OpKind
	// Name is the file's base name: the name a File was opened with, the
	// old name for OpRename, "." for OpSyncDir and OpList.
	Name string
	// NewName is the new name for OpRename, otherwise empty.
	NewName string
	// Index is the 0-based index of a mutating operation among all mutating
	// operations through this Faulty (failed ones included); -1 for other
	// kinds.
	Index int
	// Len is the number of bytes to write (OpWrite) or read (OpRead).
	Len int
}

func (op Op) String() string {
	s := op.Kind.String() + " " + op.Name
	if op.NewName != "" {
		s += " -> " + op.NewName
	}
	if op.Index >= 0 {
		s += fmt.Sprintf(" #%d", op.Index)
	}
	if op.Kind == OpWrite || op.Kind == OpRead {
		s += fmt.Sprintf(" (%d bytes)", op.Len)
	}
	return s
}

// Injector decides the fate of an operation: nil lets it proceed; an error
// makes it fail with that error without being performed, except that an
// OpWrite failing with an error from ShortWrite(n, err) writes the first n
// bytes and returns (n, err). Injectors are called one at a time (under the
// Faulty's lock), so they must not call back into the Faulty.
type Injector func(op Op) error

// Faulty is an FS that passes every operation to an underlying FS after
// asking an Injector whether it should fail. Failures are not sticky: the
// operation after an injected failure proceeds normally unless the injector
// says otherwise (stopping after an I/O error is the engine's job). It is
// safe for concurrent use.
type Faulty struct {
	fs     FS
	inject Injector
	mu     sync.Mutex
	next   int // Index of the next mutating operation
}

var _ FS = (*Faulty)(nil)

// NewFaulty returns a Faulty over fs. A nil inject injects nothing.
func NewFaulty(fs FS, inject Injector) *Faulty {
	return &Faulty{fs: fs, inject: inject}
}

// Ops returns the number of mutating operations seen so far, injected
// failures included: the Index the next one will get.
func (f *Faulty) Ops() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.next
}

// check numbers op and asks the injector about it.
func (f *Faulty) check(op Op) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	op.Index = -1
	if op.Kind.Mutating() {
		op.Index = f.next
		f.next++
	}
	if f.inject == nil {
		return nil
	}
	return f.inject(op)
}

// Create implements FS.
func (f *Faulty) Create(name string) (File, error) {
	if err := f.check(Op{Kind: OpCreate, Name: name}); err != nil {
		return nil, err
	}
	return f.wrap(name)(f.fs.Create(name))
}

// Open implements FS.
func (f *Faulty) Open(name string) (File, error) {
	if err := f.check(Op{Kind: OpOpen, Name: name}); err != nil {
		return nil, err
	}
	return f.wrap(name)(f.fs.Open(name))
}

// OpenReadWrite implements FS.
func (f *Faulty) OpenReadWrite(name string) (File, error) {
	if err := f.check(Op{Kind: OpOpen, Name: name}); err != nil {
		return nil, err
	}
	return f.wrap(name)(f.fs.OpenReadWrite(name))
}

func (f *Faulty) wrap(name string) func(File, error) (File, error) {
	return func(file File, err error) (File, error) {
		if err != nil {
			return nil, err
		}
		return &faultyFile{File: file, f: f, name: name}, nil
	}
}

// Remove implements FS.
func (f *Faulty) Remove(name string) error {
	if err := f.check(Op{Kind: OpRemove, Name: name}); err != nil {
		return err
	}
	return f.fs.Remove(name)
}

// Rename implements FS.
func (f *Faulty) Rename(oldname, newname string) error {
	if err := f.check(Op{Kind: OpRename, Name: oldname, NewName: newname}); err != nil {
		return err
	}
	return f.fs.Rename(oldname, newname)
}

// List implements FS.
func (f *Faulty) List() ([]string, error) {
	if err := f.check(Op{Kind: OpList, Name: "."}); err != nil {
		return nil, err
	}
	return f.fs.List()
}

// Stat implements FS.
func (f *Faulty) Stat(name string) (int64, error) {
	if err := f.check(Op{Kind: OpStat, Name: name}); err != nil {
		return 0, err
	}
	return f.fs.Stat(name)
}

// RenameNoReplace implements FS; it is an OpRename.
func (f *Faulty) RenameNoReplace(oldname, newname string) error {
	if err := f.check(Op{Kind: OpRename, Name: oldname, NewName: newname}); err != nil {
		return err
	}
	return f.fs.RenameNoReplace(oldname, newname)
}

// ReadDir implements FS; it is an OpList.
func (f *Faulty) ReadDir() ([]DirEntry, error) {
	if err := f.check(Op{Kind: OpList, Name: "."}); err != nil {
		return nil, err
	}
	return f.fs.ReadDir()
}

// Lstat implements FS; it is an OpStat.
func (f *Faulty) Lstat(name string) (FileInfo, error) {
	if err := f.check(Op{Kind: OpStat, Name: name}); err != nil {
		return FileInfo{}, err
	}
	return f.fs.Lstat(name)
}

// SyncDir implements FS.
func (f *Faulty) SyncDir() error {
	if err := f.check(Op{Kind: OpSyncDir, Name: "."}); err != nil {
		return err
	}
	return f.fs.SyncDir()
}

// Lock implements FS.
func (f *Faulty) Lock(name string) (io.Closer, error) {
	if err := f.check(Op{Kind: OpLock, Name: name}); err != nil {
		return nil, err
	}
	return f.fs.Lock(name)
}

// faultyFile consults the injector before Read, ReadAt, Write, Sync and
// Truncate. Seek, Size and Close pass through.
type faultyFile struct {
	File
	f    *Faulty
	name string
}

func (ff *faultyFile) Read(p []byte) (int, error) {
	if err := ff.f.check(Op{Kind: OpRead, Name: ff.name, Len: len(p)}); err != nil {
		return 0, err
	}
	return ff.File.Read(p)
}

func (ff *faultyFile) ReadAt(p []byte, off int64) (int, error) {
	if err := ff.f.check(Op{Kind: OpRead, Name: ff.name, Len: len(p)}); err != nil {
		return 0, err
	}
	return ff.File.ReadAt(p, off)
}

func (ff *faultyFile) Write(p []byte) (int, error) {
	err := ff.f.check(Op{Kind: OpWrite, Name: ff.name, Len: len(p)})
	if err == nil {
		return ff.File.Write(p)
	}
	sw, ok := errors.AsType[*shortWriteError](err)
	if !ok {
		return 0, err
	}
	n, werr := ff.File.Write(p[:min(max(sw.n, 0), len(p))])
	if werr != nil {
		return n, werr
	}
	return n, sw.err
}

func (ff *faultyFile) Sync() error {
	if err := ff.f.check(Op{Kind: OpSync, Name: ff.name}); err != nil {
		return err
	}
	return ff.File.Sync()
}

func (ff *faultyFile) Truncate(size int64) error {
	if err := ff.f.check(Op{Kind: OpTruncate, Name: ff.name}); err != nil {
		return err
	}
	return ff.File.Truncate(size)
}

// shortWriteError is an injected partial write.
type shortWriteError struct {
	n   int
	err error
}

func (e *shortWriteError) Error() string {
	return fmt.Sprintf("short write of %d bytes: %v", e.n, e.err)
}

func (e *shortWriteError) Unwrap() error { return e.err }

// ShortWrite returns an injector result that makes an OpWrite write only
// its first n bytes (clamped to the write's length) and then return
// (n, err); a nil err means io.ErrShortWrite. For any other kind of
// operation it is an ordinary failure: the operation is not performed and
// the returned error (which matches err) is returned.
func ShortWrite(n int, err error) error {
	if err == nil {
		err = io.ErrShortWrite
	}
	return &shortWriteError{n: n, err: err}
}

// FailAt returns an Injector that fails the mutating operation with Index k
// with err and lets every other operation through.
func FailAt(k int, err error) Injector {
	return func(op Op) error {
		if op.Kind.Mutating() && op.Index == k {
			return err
		}
		return nil
	}
}

// FailKind returns an Injector that fails the nth (0-based) operation of
// kind with err and lets every other operation through. It counts the
// operations it sees, so use a fresh one for each Faulty.
func FailKind(kind OpKind, nth int, err error) Injector {
	var seen atomic.Int64
	return func(op Op) error {
		if op.Kind == kind && seen.Add(1)-1 == int64(nth) {
			return err
		}
		return nil
	}
}

// EIO returns an injectable I/O error on name: an *fs.PathError matching
// syscall.EIO.
func EIO(name string) error {
	return &fs.PathError{Op: "injected", Path: name, Err: syscall.EIO}
}

// ENOSPC returns an injectable out-of-space error on name: an *fs.PathError
// matching syscall.ENOSPC.
func ENOSPC(name string) error {
	return &fs.PathError{Op: "injected", Path: name, Err: syscall.ENOSPC}
}
