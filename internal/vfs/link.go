package vfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// osOf returns the OS directory behind fsys, looking through ReadOnly.
func osOf(fsys FS) (*OS, bool) {
	switch f := fsys.(type) {
	case *OS:
		return f, true
	case readOnly:
		return osOf(f.fs)
	}
	return nil, false
}
