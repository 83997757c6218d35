package vfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Link makes dstName in dst a hard link to srcName in src: the same file
// under a second name, made without copying a byte. It works only when
// both are operating-system directories (OS, or ReadOnly over one; a
// ReadOnly source is not modified: the link is made in dst) on one file
// system; otherwise it fails with an error matching errors.ErrUnsupported,
// or with the link(2) error (EXDEV across file systems), and the caller
// copies instead. It never replaces an existing dstName (fs.ErrExist).
// Like any new directory entry, the link is durable only after
// dst.SyncDir.
func Link(src FS, srcName string, dst FS, dstName string) error {
	s, ok := osOf(src)
	d, ok2 := osOf(dst)
	if !ok || !ok2 {
		return fmt.Errorf("evlog/vfs: hard links need two directories of the operating system: %w", errors.ErrUnsupported)
	}
	if err := checkName("link", srcName); err != nil {
		return err
	}
	if err := checkName("link", dstName); err != nil {
		return err
	}
	// Only a regular file is linked (a symbolic link would be linked as
	// itself, a name pointing elsewhere).
	if err := s.lstatRegular("link", srcName, false); err != nil {
		return err
	}
	return os.Link(filepath.Join(s.dir, srcName), filepath.Join(d.dir, dstName))
}

// Unwrapper is implemented by an FS that wraps another and passes its
// files through unchanged (the log's record of failed directory fsyncs):
// Link and Shared look through it to the operating-system directory.
type Unwrapper interface {
	UnwrapFS() FS
}

// IsOS reports whether fsys is an operating-system directory (OS),
// looking through ReadOnly and any Unwrapper.
func IsOS(fsys FS) bool {
	_, ok := osOf(fsys)
	return ok
}

// osOf returns the OS directory behind fsys, looking through ReadOnly and
// any Unwrapper.
func osOf(fsys FS) (*OS, bool) {
	switch f := fsys.(type) {
	case *OS:
		return f, true
	case readOnly:
		return osOf(f.fs)
	case Unwrapper:
		return osOf(f.UnwrapFS())
	}
	return nil, false
}

// Shared reports whether name in fsys may have more than one name (a hard
// link count above 1), that is, whether writing into it could change
// another file: true when it cannot tell. Files of other FSs than the
// operating system's are never shared.
func Shared(fsys FS, name string) (bool, error) {
	o, ok := osOf(fsys)
	if !ok {
		return false, nil
	}
	if err := checkName("lstat", name); err != nil {
		return true, err
	}
	fi, err := o.root.Lstat(name)
	if err != nil {
		return true, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || uint64(st.Nlink) != 1, nil
}
