package vfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// OS is an FS over a real directory, accessed through an os.Root so that no
// operation can reach outside it. It is safe for concurrent use.
//
// Sync is fsync(2); on macOS Go's os.File.Sync issues fcntl(F_FULLFSYNC),
// which (unlike a plain fsync there) flushes the drive's write cache. SyncDir
// fsyncs the directory itself. Lock is an exclusive, non-blocking flock(2).
type OS struct {
	dir      string
	root     *os.Root
	filePerm fs.FileMode // of the files it creates
}

// DefaultFilePerm is the permission of the files OS creates unless
// SetFilePerm says otherwise: readable and writable by the owner only (an
// event log usually holds personal data). The process umask applies too.
const DefaultFilePerm fs.FileMode = 0o600

// DirPerm returns the permission of a directory created for files of
// permission filePerm: filePerm plus search (x) wherever it grants read.
// DirPerm(0o600) is 0o700, DirPerm(0o640) is 0o750.
func DirPerm(filePerm fs.FileMode) fs.FileMode {
	filePerm &= fs.ModePerm
	return filePerm | (filePerm&0o444)>>2
}

var _ FS = (*OS)(nil)

// errNotDir is OpenOS's error for a path that is not a directory (what
// os.OpenRoot says of a regular file).
var errNotDir = errors.New("not a directory")

// OpenOS opens the existing directory dir. It never creates anything: when
// dir does not exist the error matches fs.ErrNotExist. When dir is not a
// directory (a regular file, a FIFO, a device) it fails at once and never
// blocks: os.OpenRoot opens its path without O_DIRECTORY, which on a FIFO
// waits for a writer, so dir is stat'ed first (for the error), and then
// opened as dirPath(dir), a path only a directory resolves: a path
// replaced by a FIFO between the two fails with ENOTDIR instead of
// blocking. os.OpenRoot then checks the opened descriptor (fstat) is a
// directory.
func OpenOS(dir string) (*OS, error) {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: errNotDir}
	}
	beforeOpenRoot(dir)
	root, err := os.OpenRoot(dirPath(dir))
	if err != nil {
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			pe.Path = dir // as given, without dirPath's separator
		}
		return nil, err
	}
	return &OS{dir: dir, root: root, filePerm: DefaultFilePerm}, nil
}

// dirPath returns dir with a trailing separator: POSIX path resolution
// fails with ENOTDIR, without opening anything, unless such a path names a
// directory (or a symbolic link to one), so opening it never blocks on a
// FIFO. "" stays "" (not the root directory).
func dirPath(dir string) string {
	if dir == "" || os.IsPathSeparator(dir[len(dir)-1]) {
		return dir
	}
	return dir + string(filepath.Separator)
}

// beforeOpenFile runs in Open, OpenReadWrite and Create between the check
// of name and its open: a variable so that tests can change what name is.
var beforeOpenFile = func(string) {}

// beforeOpenRoot runs in OpenOS between the check of dir and its open: a
// variable so that tests can change what dir is there.
var beforeOpenRoot = func(string) {}

// SetFilePerm sets the permission of the files o creates from now on
// (Create, and Lock's lock file). Call it before sharing o.
func (o *OS) SetFilePerm(perm fs.FileMode) { o.filePerm = perm & fs.ModePerm }

// CreateOS is CreateOSPerm(dir, DefaultFilePerm).
func CreateOS(dir string) (*OS, error) { return CreateOSPerm(dir, DefaultFilePerm) }

// CreateOSPerm creates dir and any missing parents (mode DirPerm(filePerm),
// so 0o700 for the default), makes every directory entry it created durable
// by fsyncing the parent of each created directory, and opens it with
// SetFilePerm(filePerm). An existing dir is simply opened (its mode is left
// alone).
func CreateOSPerm(dir string, filePerm fs.FileMode) (*OS, error) {
	// Find the directories MkdirAll is about to create, deepest first.
	var missing []string
	for p := filepath.Clean(dir); ; {
		_, err := os.Stat(p)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, p)
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	if err := os.MkdirAll(dir, DirPerm(filePerm)); err != nil {
		return nil, err
	}
	// Outermost first: each new entry is made durable in its parent.
	for _, p := range slices.Backward(missing) {
		if err := syncParent(filepath.Dir(p)); err != nil {
			return nil, err
		}
	}
	o, err := OpenOS(dir)
	if err != nil {
		return nil, err
	}
	o.SetFilePerm(filePerm)
	return o, nil
}

// syncParent is how CreateOS makes a new entry durable; a variable so tests
// can observe it.
var syncParent = syncPath

// syncPath fsyncs the directory at path (never blocking on a FIFO there,
// see dirPath).
func syncPath(path string) error {
	d, err := os.Open(dirPath(path))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Dir returns the directory path OS was opened with.
func (o *OS) Dir() string { return o.dir }

// Close closes the root. Files already open stay usable; every FS method
// fails afterwards.
func (o *OS) Close() error { return o.root.Close() }

// path is name inside the directory, for messages.
func (o *OS) path(name string) string { return filepath.Join(o.dir, name) }

// Create implements FS.
func (o *OS) Create(name string) (File, error) {
	return o.open("create", name, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
}

// Open implements FS.
func (o *OS) Open(name string) (File, error) {
	return o.open("open", name, os.O_RDONLY)
}

// OpenReadWrite implements FS.
func (o *OS) OpenReadWrite(name string) (File, error) {
	return o.open("open", name, os.O_RDWR)
}

func (o *OS) open(op, name string, flag int) (File, error) {
	if err := checkName(op, name); err != nil {
		return nil, err
	}
	// Only regular files (see FS): refuse anything else before opening it,
	// open without blocking (a FIFO swapped in meanwhile must not hang us)
	// and without truncating, then check what was opened (fstat: only a
	// regular file is kept, on which O_NONBLOCK has no effect, so it is
	// left set).
	if err := o.lstatRegular(op, name, flag&os.O_CREATE != 0); err != nil {
		return nil, err
	}
	beforeOpenFile(name)
	f, err := o.root.OpenFile(name, flag&^os.O_TRUNC|oNonblock, o.filePerm)
	if err != nil {
		return nil, err
	}
	if err := o.checkOpened(op, name, f); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	if flag&os.O_TRUNC != 0 {
		if err := f.Truncate(0); err != nil {
			return nil, errors.Join(err, f.Close())
		}
	}
	return &osFile{f: f}, nil
}

// Remove implements FS.
func (o *OS) Remove(name string) error {
	if err := checkName("remove", name); err != nil {
		return err
	}
	return o.root.Remove(name)
}

// Rename implements FS.
func (o *OS) Rename(oldname, newname string) error {
	if err := checkName("rename", oldname); err != nil {
		return err
	}
	if err := checkName("rename", newname); err != nil {
		return err
	}
	return o.root.Rename(oldname, newname)
}

// List implements FS. Subdirectories are skipped.
func (o *OS) List() ([]string, error) {
	entries, err := o.ReadDir() // sorted by name
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.Mode.IsDir() {
			names = append(names, e.Name)
		}
	}
	return names, nil
}

// Stat implements FS.
func (o *OS) Stat(name string) (int64, error) {
	if err := checkName("stat", name); err != nil {
		return 0, err
	}
	fi, err := o.root.Stat(name)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// SyncDir implements FS: it fsyncs the directory.
func (o *OS) SyncDir() error {
	d, err := o.root.Open(".")
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Lock implements FS with flock(2) on name (created with the file
// permission if missing). flock locks belong to the open file description, so a second
// Lock of the same file fails even within one process. When the lock is
// held the error names the file and matches ErrLocked.
func (o *OS) Lock(name string) (io.Closer, error) {
	if err := checkName("lock", name); err != nil {
		return nil, err
	}
	f, err := o.root.OpenFile(name, os.O_RDWR|os.O_CREATE, o.filePerm)
	if err != nil {
		return nil, err
	}
	if err := flock(f); err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			return nil, &lockedError{path: o.path(name)}
		}
		return nil, &fs.PathError{Op: "lock", Path: o.path(name), Err: err}
	}
	l := &osLock{f: f, root: o.root, name: name, path: o.path(name)}
	// The name may have been removed or replaced between the open and the
	// flock: then the lock guards nothing.
	if err := l.CheckLock(); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

// osLock is a held flock; Close unlocks and closes the file.
type osLock struct {
	f    *os.File
	root *os.Root
	name string
	path string // for messages
}

// CheckLock implements LockChecker: it compares the device and inode of
// the locked descriptor (fstat) with those of the name (stat).
func (l *osLock) CheckLock() error {
	held, err := l.f.Stat()
	if err != nil {
		return &fs.PathError{Op: "checklock", Path: l.path, Err: err}
	}
	named, err := l.root.Stat(l.name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &lockLostError{path: l.path, why: "was removed"}
	case err != nil:
		return &fs.PathError{Op: "checklock", Path: l.path, Err: err}
	case !os.SameFile(held, named):
		return &lockLostError{path: l.path, why: "was replaced by another file"}
	}
	return nil
}

func (l *osLock) Close() error {
	uerr := funlock(l.f)
	if err := l.f.Close(); err != nil {
		return err // fs.ErrClosed on a second Close
	}
	return uerr
}

// osFile is a File over an *os.File.
type osFile struct {
	f *os.File
}

func (f *osFile) Read(p []byte) (int, error)              { return f.f.Read(p) }
func (f *osFile) ReadAt(p []byte, off int64) (int, error) { return f.f.ReadAt(p, off) }
func (f *osFile) Write(p []byte) (int, error)             { return f.f.Write(p) }
func (f *osFile) Seek(off int64, whence int) (int64, error) {
	return f.f.Seek(off, whence)
}
func (f *osFile) Close() error              { return f.f.Close() }
func (f *osFile) Sync() error               { return f.f.Sync() }
func (f *osFile) Truncate(size int64) error { return f.f.Truncate(size) }
func (f *osFile) Size() (int64, error) {
	fi, err := f.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
