package vfs

import (
	"io"
	"sync"
	"sync/atomic"
)

// Counters are operation and byte counts. Every call counts, whether or not
// it succeeds; byte counts are the bytes actually transferred.
type Counters struct {
	// Per file and in total.
	Reads        int64 // calls to File.Read and File.ReadAt
	BytesRead    int64
	Writes       int64 // calls to File.Write
	BytesWritten int64
	Syncs        int64 // calls to File.Sync
	Creates      int64 // calls to FS.Create
	Opens        int64 // calls to FS.Open and FS.OpenReadWrite
	Removes      int64 // calls to FS.Remove
	// In total only (zero in Counting.File).
	Renames  int64 // calls to FS.Rename
	SyncDirs int64 // calls to FS.SyncDir
}

// counters is the concurrency-safe form of Counters.
type counters struct {
	reads, bytesRead, writes, bytesWritten, syncs atomic.Int64
	creates, opens, removes, renames, syncDirs    atomic.Int64
}

func (c *counters) snapshot() Counters {
	return Counters{
		Reads: c.reads.Load(), BytesRead: c.bytesRead.Load(),
		Writes: c.writes.Load(), BytesWritten: c.bytesWritten.Load(),
		Syncs: c.syncs.Load(), Creates: c.creates.Load(),
		Opens: c.opens.Load(), Removes: c.removes.Load(),
		Renames: c.renames.Load(), SyncDirs: c.syncDirs.Load(),
	}
}

func (c *counters) reset() {
	for _, v := range []*atomic.Int64{
		&c.reads, &c.bytesRead, &c.writes, &c.bytesWritten, &c.syncs,
		&c.creates, &c.opens, &c.removes, &c.renames, &c.syncDirs,
	} {
		v.Store(0)
	}
}

// Counting is an FS that counts the operations and bytes going through it
// to an underlying FS, per file base name and in total. A file counts under
// the name it was opened with, even after it is renamed. It is safe for
// concurrent use. Lock, List and Stat are passed through uncounted.
type Counting struct {
	fs    FS
	mu    sync.Mutex // guards files (the map, not the counters)
	files map[string]*counters
	total counters
}

var _ FS = (*Counting)(nil)

// NewCounting returns a Counting over fs with all counts zero.
func NewCounting(fs FS) *Counting {
	return &Counting{fs: fs, files: map[string]*counters{}}
}

// file returns the counters of name, creating them.
func (c *Counting) file(name string) *counters {
	c.mu.Lock()
	defer c.mu.Unlock()
	fc := c.files[name]
	if fc == nil {
		fc = &counters{}
		c.files[name] = fc
	}
	return fc
}

// File returns the counts for the file base name.
func (c *Counting) File(name string) Counters {
	c.mu.Lock()
	fc := c.files[name]
	c.mu.Unlock()
	if fc == nil {
		return Counters{}
	}
	return fc.snapshot()
}

// Total returns the counts over all files.
func (c *Counting) Total() Counters { return c.total.snapshot() }

// Reset zeroes every count. Open files keep counting from zero.
func (c *Counting) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, fc := range c.files {
		fc.reset()
	}
	c.total.reset()
}

// Create implements FS.
func (c *Counting) Create(name string) (File, error) {
	fc := c.file(name)
	fc.creates.Add(1)
	c.total.creates.Add(1)
	f, err := c.fs.Create(name)
	return c.wrap(fc, f, err)
}

// Open implements FS.
func (c *Counting) Open(name string) (File, error) {
	fc := c.file(name)
	fc.opens.Add(1)
	c.total.opens.Add(1)
	f, err := c.fs.Open(name)
	return c.wrap(fc, f, err)
}

// OpenReadWrite implements FS.
func (c *Counting) OpenReadWrite(name string) (File, error) {
	fc := c.file(name)
	fc.opens.Add(1)
	c.total.opens.Add(1)
	f, err := c.fs.OpenReadWrite(name)
	return c.wrap(fc, f, err)
}

func (c *Counting) wrap(fc *counters, f File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, c: c, fc: fc}, nil
}

// Remove implements FS.
func (c *Counting) Remove(name string) error {
	c.file(name).removes.Add(1)
	c.total.removes.Add(1)
	return c.fs.Remove(name)
}

// Rename implements FS.
func (c *Counting) Rename(oldname, newname string) error {
	c.total.renames.Add(1)
	return c.fs.Rename(oldname, newname)
}

// List implements FS.
func (c *Counting) List() ([]string, error) { return c.fs.List() }

// Stat implements FS.
func (c *Counting) Stat(name string) (int64, error) { return c.fs.Stat(name) }

// RenameNoReplace implements FS; it counts as a rename.
func (c *Counting) RenameNoReplace(oldname, newname string) error {
	c.total.renames.Add(1)
	return c.fs.RenameNoReplace(oldname, newname)
}

// ReadDir implements FS.
func (c *Counting) ReadDir() ([]DirEntry, error) { return c.fs.ReadDir() }

// Lstat implements FS.
func (c *Counting) Lstat(name string) (FileInfo, error) { return c.fs.Lstat(name) }

// SyncDir implements FS.
func (c *Counting) SyncDir() error {
	c.total.syncDirs.Add(1)
	return c.fs.SyncDir()
}

// Lock implements FS.
func (c *Counting) Lock(name string) (io.Closer, error) { return c.fs.Lock(name) }

// countingFile counts into its file's counters and the totals.
type countingFile struct {
	File
	c  *Counting
	fc *counters
}

func (f *countingFile) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	f.countRead(n)
	return n, err
}

func (f *countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.countRead(n)
	return n, err
}

func (f *countingFile) countRead(n int) {
	f.fc.reads.Add(1)
	f.fc.bytesRead.Add(int64(n))
	f.c.total.reads.Add(1)
	f.c.total.bytesRead.Add(int64(n))
}

func (f *countingFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.fc.writes.Add(1)
	f.fc.bytesWritten.Add(int64(n))
	f.c.total.writes.Add(1)
	f.c.total.bytesWritten.Add(int64(n))
	return n, err
}

func (f *countingFile) Sync() error {
	f.fc.syncs.Add(1)
	f.c.total.syncs.Add(1)
	return f.File.Sync()
}
