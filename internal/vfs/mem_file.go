package vfs

import (
	"errors"
	"io"
	"io/fs"
)

// memFile is an open Mem file: a handle on an inode with its own offset.
// All state is guarded by m.mu.
type memFile struct {
	m        *Mem
	ino      *inode
	name     string // the name it was opened under, for errors
	off      int64
	writable bool
	closed   bool
}

var errNegativeOffset = errors.New("negative offset")

// usable fails with ErrCrashed after a crash and with fs.ErrClosed on a
// closed handle. Caller holds m.mu.
func (f *memFile) usable(op string) error {
	if err := f.m.alive(op, f.name); err != nil {
		return err
	}
	if f.closed {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	return nil
}

// Read implements io.Reader at the handle's offset.
func (f *memFile) Read(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.usable("read"); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if f.off >= int64(len(f.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.ino.data[f.off:])
	f.off += int64(n)
	return n, nil
}

// ReadAt implements io.ReaderAt; it does not use or move the offset.
func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.usable("read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: f.name, Err: errNegativeOffset}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= int64(len(f.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Write implements io.Writer at the handle's offset, zero-filling any gap
// past the end of the file.
func (f *memFile) Write(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.usable("write"); err != nil {
		return 0, err
	}
	if err := f.m.step("write", f.name); err != nil {
		return 0, err
	}
	if !f.writable {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: errNotWritable}
	}
	end := f.off + int64(len(p))
	f.ino.resize(end, false)
	f.ino.clean = min(f.ino.clean, f.off)
	copy(f.ino.data[f.off:end], p)
	f.off = end
	return len(p), nil
}

// resize grows data (with zeros) to at least size, or to exactly size when
// exact is set.
//
// Growth at least doubles the capacity: a file built by many small writes
// (a 32 MiB segment in tests) is copied about twice in all, not the ~5
// times append's 1.25x growth of large slices costs, each copy a range
// check under the race detector.
func (ino *inode) resize(size int64, exact bool) {
	n := int64(len(ino.data))
	if size != n && (size > n || exact) {
		ino.clean = min(ino.clean, size, n)
	}
	switch {
	case size > int64(cap(ino.data)):
		data := make([]byte, size, max(size, 2*int64(cap(ino.data))))
		copy(data, ino.data)
		ino.data = data
	case size > n:
		ino.data = ino.data[:size]
		clear(ino.data[n:]) // a shrink keeps the capacity and its old bytes
	case size < n && exact:
		ino.data = ino.data[:size]
	}
}

// Seek implements io.Seeker. Seeking past the end is allowed; a negative
// resulting offset is an error.
func (f *memFile) Seek(offset int64, whence int) (int64, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.usable("seek"); err != nil {
		return 0, err
	}
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = f.off
	case io.SeekEnd:
		base = int64(len(f.ino.data))
	default:
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	if base+offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: errNegativeOffset}
	}
	f.off = base + offset
	return f.off, nil
}

// Close releases the handle. After a crash it always returns nil.
func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.m.crashed {
		f.closed = true
		return nil
	}
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

// Sync makes the inode's current content its durable content. It does not
// make the file's directory entry durable (that is SyncDir).
func (f *memFile) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.usable("sync"); err != nil {
		return err
	}
	if err := f.m.step("sync", f.name); err != nil {
		return err
	}
	// Only what changed since the last Sync is copied: a segment synced
	// after each append would otherwise be copied whole every time.
	ino := f.ino
	ino.synced = append(ino.synced[:ino.clean], ino.data[ino.clean:]...)
	ino.clean = int64(len(ino.data))
	return nil
}

// Truncate implements File; growing fills with zeros.
func (f *memFile) Truncate(size int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.usable("truncate"); err != nil {
		return err
	}
	if err := f.m.step("truncate", f.name); err != nil {
		return err
	}
	if !f.writable {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: errNotWritable}
	}
	if size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: fs.ErrInvalid}
	}
	f.ino.resize(size, true)
	return nil
}

// Size implements File.
func (f *memFile) Size() (int64, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.usable("stat"); err != nil {
		return 0, err
	}
	return int64(len(f.ino.data)), nil
}
