package vfs

import (
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sync"
)

// Mem is an in-memory FS that models what survives a power loss. It is safe
// for concurrent use: one mutex guards all of its state.
//
// The model keeps, for every file (inode), its current content and its
// content as of its last successful File.Sync; and for the directory, the
// current namespace (name → inode), the durable namespace as of the last
// successful SyncDir, and the ordered log of directory operations (create,
// rename, remove) performed since then. File.Sync makes an inode's data
// durable but not its directory entry; SyncDir makes the namespace durable
// but no file data. What a power loss leaves behind is computed from this
// by CrashClone (see CrashModel); CrashAt arms a power loss at a chosen
// operation. DropDirOps models a failed directory fsync that loses the
// pending directory operations for good (fsyncgate).
//
// Names are base names (see FS). Removing or renaming a file keeps its open
// handles working, as on POSIX. Each handle has its own offset.
//
// Mutating operations (Create, File.Write, File.Sync, File.Truncate, Remove,
// Rename, SyncDir) are numbered from 0 in the order they are called; see
// Ops and CrashAt. A call counts even when it fails (for example Remove of a
// missing name or Write on a read-only handle); it does not count when it is
// rejected before reaching the "disk": an invalid name, a closed handle, or
// a Mem that has already crashed.
type Mem struct {
	mu      sync.Mutex
	names   map[string]*inode // current namespace
	durable map[string]*inode // namespace as of the last successful SyncDir
	log     []dirOp           // directory operations since that SyncDir (or DropDirOps), in order
	// dropped: DropDirOps lost directory operations, so the durable
	// namespace no longer follows the current one; SyncDir then applies
	// log to durable instead of copying names.
	dropped bool
	nextID  uint64
	ops     int             // mutating operations performed
	crashAt int             // index of the op that loses power; < 0 when disarmed
	crashed bool            // power has been lost: everything fails
	locks   map[*inode]bool // locked files (a lock belongs to the file, as flock's does)
}

var _ FS = (*Mem)(nil)

// inode is a file's content, current and durable.
type inode struct {
	id     uint64 // creation order, for stable iteration
	data   []byte // current content
	synced []byte // content as of the last successful Sync; never aliases data
	// clean is a length up to which data and synced are known to agree
	// (both at least that long), so Sync copies only what follows; every
	// change to data lowers it to where the change starts. 0 is always
	// correct.
	clean int64
}

type dirOpKind uint8

const (
	dirCreate dirOpKind = iota
	dirRename
	dirRemove
)

// dirOp is one directory operation not yet made durable by SyncDir.
type dirOp struct {
	kind dirOpKind
	name string // created or removed name, or rename source
	to   string // rename target
	ino  *inode // created or renamed inode
}

// apply performs op on the namespace ns.
func (op dirOp) apply(ns map[string]*inode) {
	switch op.kind {
	case dirCreate:
		ns[op.name] = op.ino
	case dirRename:
		delete(ns, op.name)
		ns[op.to] = op.ino
	case dirRemove:
		delete(ns, op.name)
	}
}

// NewMem returns an empty Mem with no armed crash.
func NewMem() *Mem {
	return &Mem{
		names:   map[string]*inode{},
		durable: map[string]*inode{},
		crashAt: -1,
		locks:   map[*inode]bool{},
	}
}

// newInode returns a new inode holding data, current and synced. The caller
// holds m.mu (or owns m exclusively).
func (m *Mem) newInode(data []byte) *inode {
	m.nextID++
	return &inode{id: m.nextID, data: data, synced: slices.Clone(data)}
}

// errNotWritable is returned when writing through a read-only handle.
var errNotWritable = errors.New("file not open for writing")

// alive fails with ErrCrashed once power has been lost. Caller holds m.mu.
func (m *Mem) alive(op, path string) error {
	if m.crashed {
		return &fs.PathError{Op: op, Path: path, Err: ErrCrashed}
	}
	return nil
}

// step accounts for one mutating operation: it fails with ErrCrashed (and
// leaves the operation undone) if power has been lost or is lost now, and
// counts it otherwise. Caller holds m.mu.
func (m *Mem) step(op, path string) error {
	if err := m.alive(op, path); err != nil {
		return err
	}
	if m.crashAt >= 0 && m.ops >= m.crashAt {
		m.crashed = true
		return &fs.PathError{Op: op, Path: path, Err: ErrCrashed}
	}
	m.ops++
	return nil
}

// lookup returns the inode named name or an fs.ErrNotExist error. Caller
// holds m.mu.
func (m *Mem) lookup(op, name string) (*inode, error) {
	ino := m.names[name]
	if ino == nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return ino, nil
}

// Create implements FS. Creating an existing name truncates that file (same
// inode, as O_TRUNC does); that is a change to file data, not a directory
// operation.
func (m *Mem) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.alive("create", name); err != nil {
		return nil, err
	}
	if err := checkName("create", name); err != nil {
		return nil, err
	}
	if err := m.step("create", name); err != nil {
		return nil, err
	}
	ino := m.names[name]
	if ino != nil {
		ino.data, ino.clean = nil, 0
	} else {
		ino = m.newInode(nil)
		m.names[name] = ino
		m.log = append(m.log, dirOp{kind: dirCreate, name: name, ino: ino})
	}
	return &memFile{m: m, ino: ino, name: name, writable: true}, nil
}

// Open implements FS.
func (m *Mem) Open(name string) (File, error) { return m.open(name, false) }

// OpenReadWrite implements FS.
func (m *Mem) OpenReadWrite(name string) (File, error) { return m.open(name, true) }

func (m *Mem) open(name string, writable bool) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.alive("open", name); err != nil {
		return nil, err
	}
	if err := checkName("open", name); err != nil {
		return nil, err
	}
	ino, err := m.lookup("open", name)
	if err != nil {
		return nil, err
	}
	return &memFile{m: m, ino: ino, name: name, writable: writable}, nil
}

// Remove implements FS.
func (m *Mem) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.alive("remove", name); err != nil {
		return err
	}
	if err := checkName("remove", name); err != nil {
		return err
	}
	if err := m.step("remove", name); err != nil {
		return err
	}
	if _, err := m.lookup("remove", name); err != nil {
		return err
	}
	delete(m.names, name)
	m.log = append(m.log, dirOp{kind: dirRemove, name: name})
	return nil
}

// Rename implements FS. Renaming a name to itself is a no-op.
func (m *Mem) Rename(oldname, newname string) error {
	return m.rename(oldname, newname, false)
}

// rename is Rename and, with noReplace, RenameNoReplace.
func (m *Mem) rename(oldname, newname string, noReplace bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	linkErr := func(err error) error {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	if m.crashed {
		return linkErr(ErrCrashed)
	}
	if err := checkName("rename", oldname); err != nil {
		return err
	}
	if err := checkName("rename", newname); err != nil {
		return err
	}
	if err := m.step("rename", oldname); err != nil {
		return linkErr(ErrCrashed)
	}
	ino := m.names[oldname]
	if ino == nil {
		return linkErr(fs.ErrNotExist)
	}
	if noReplace && m.names[newname] != nil {
		return linkErr(fs.ErrExist)
	}
	if oldname == newname {
		return nil
	}
	delete(m.names, oldname)
	m.names[newname] = ino
	m.log = append(m.log, dirOp{kind: dirRename, name: oldname, to: newname, ino: ino})
	return nil
}

// List implements FS.
func (m *Mem) List() ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.alive("list", "."); err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(m.names)), nil
}

// Stat implements FS.
func (m *Mem) Stat(name string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.alive("stat", name); err != nil {
		return 0, err
	}
	if err := checkName("stat", name); err != nil {
		return 0, err
	}
	ino, err := m.lookup("stat", name)
	if err != nil {
		return 0, err
	}
	return int64(len(ino.data)), nil
}

// SyncDir implements FS: the directory operations pending (since the last
// SyncDir or DropDirOps) become durable. Until DropDirOps is first called,
// that makes the current namespace the durable one; after it, the
// operations DropDirOps lost stay lost.
func (m *Mem) SyncDir() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.step("syncdir", "."); err != nil {
		return err
	}
	if m.dropped {
		for _, op := range m.log {
			op.apply(m.durable)
		}
	} else {
		m.durable = maps.Clone(m.names)
	}
	m.log = nil
	return nil
}

// Lock implements FS with an in-memory lock table keyed by file (inode),
// as flock's locks belong to the file and not to its name: removing or
// replacing name and locking it again gives a second, independent lock (see
// CheckLock). Like OS.Lock it creates name (empty) when it does not exist;
// that creation is a directory operation like any other (durable only after
// SyncDir) but, as Lock is not a mutating operation, it is not counted by
// Ops and cannot be the armed crash point.
func (m *Mem) Lock(name string) (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.alive("lock", name); err != nil {
		return nil, err
	}
	if err := checkName("lock", name); err != nil {
		return nil, err
	}
	ino := m.names[name]
	if ino == nil {
		ino = m.newInode(nil)
		m.names[name] = ino
		m.log = append(m.log, dirOp{kind: dirCreate, name: name, ino: ino})
	}
	if m.locks[ino] {
		return nil, &lockedError{path: name}
	}
	m.locks[ino] = true
	return &memLock{m: m, name: name, ino: ino}, nil
}

// memLock is a held Mem lock; Close releases it.
type memLock struct {
	m      *Mem
	name   string
	ino    *inode
	closed bool
}

func (l *memLock) Close() error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	if l.closed {
		return &fs.PathError{Op: "unlock", Path: l.name, Err: fs.ErrClosed}
	}
	l.closed = true
	delete(l.m.locks, l.ino)
	return nil
}

// CheckLock implements LockChecker: the lock is lost when name was removed
// or now names another file.
func (l *memLock) CheckLock() error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	if l.closed {
		return &fs.PathError{Op: "checklock", Path: l.name, Err: fs.ErrClosed}
	}
	switch ino := l.m.names[l.name]; {
	case ino == nil:
		return &lockLostError{path: l.name, why: "was removed"}
	case ino != l.ino:
		return &lockLostError{path: l.name, why: "was replaced by another file"}
	}
	return nil
}

// ReadFile returns a copy of name's current content. It is a test helper:
// it works even after a crash and is not an operation.
func (m *Mem) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := checkName("readfile", name); err != nil {
		return nil, err
	}
	ino, err := m.lookup("readfile", name)
	if err != nil {
		return nil, err
	}
	return slices.Clone(ino.data), nil
}

// WriteFile sets up a fixture: it binds name to a new file holding a copy
// of data, and makes both the data and the directory entry durable, as if
// written, synced and SyncDir'ed. Other pending directory operations stay
// pending. It is not counted by Ops and fails with ErrCrashed after a crash.
// Handles open on a file previously named name keep that old file.
func (m *Mem) WriteFile(name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.alive("writefile", name); err != nil {
		return err
	}
	if err := checkName("writefile", name); err != nil {
		return err
	}
	ino := m.newInode(slices.Clone(data))
	m.names[name] = ino
	m.durable[name] = ino
	if m.dropped {
		// SyncDir replays the log onto durable: an operation on name
		// pending from before must not override this binding.
		m.log = append(m.log, dirOp{kind: dirCreate, name: name, ino: ino})
	}
	return nil
}

// Clone returns a copy of m's file state: the current and synced content of
// every file, the current and durable namespaces and the pending directory
// operations (and the operations DropDirOps lost stay lost), so the copy
// crashes exactly as m would. The copy starts fresh
// otherwise: op count 0, no armed crash, not crashed, no locks held, no open
// handles.
func (m *Mem) Clone() *Mem {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := NewMem()
	c.nextID = m.nextID
	c.dropped = m.dropped
	copied := map[*inode]*inode{}
	cp := func(ino *inode) *inode {
		if ino == nil {
			return nil
		}
		if n, ok := copied[ino]; ok {
			return n
		}
		n := &inode{id: ino.id, data: slices.Clone(ino.data), synced: slices.Clone(ino.synced)}
		copied[ino] = n
		return n
	}
	for name, ino := range m.names {
		c.names[name] = cp(ino)
	}
	for name, ino := range m.durable {
		c.durable[name] = cp(ino)
	}
	for _, op := range m.log {
		op.ino = cp(op.ino)
		c.log = append(c.log, op)
	}
	return c
}
