package vfs

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// lstatRegular fails unless name is a regular file (or, with mayCreate,
// does not exist).
func (o *OS) lstatRegular(op, name string, mayCreate bool) error {
	fi, err := o.root.Lstat(name)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return notRegular(op, o.path(name), fi.Mode())
	case err != nil && !(mayCreate && errors.Is(err, fs.ErrNotExist)):
		return err
	}
	return nil
}

// checkOpened checks that f, just opened as name, is a regular file and is
// the file name points to now. os.Root follows a symbolic link that stays
// inside the directory, so a name replaced by a link (or a FIFO) between
// lstatRegular and the open is caught here: the opened file is then not a
// regular file, or not the file the name itself is.
func (o *OS) checkOpened(op, name string, f *os.File) error {
	ffi, err := f.Stat()
	if err != nil {
		return err
	}
	if !ffi.Mode().IsRegular() {
		return notRegular(op, o.path(name), ffi.Mode())
	}
	lfi, err := o.root.Lstat(name)
	if err != nil {
		return err
	}
	if !lfi.Mode().IsRegular() {
		return notRegular(op, o.path(name), lfi.Mode())
	}
	if !os.SameFile(ffi, lfi) {
		return &fs.PathError{Op: op, Path: o.path(name), Err: errors.New("the name was replaced while it was being opened")}
	}
	return nil
}

// Lstat implements FS.
func (o *OS) Lstat(name string) (FileInfo, error) {
	if err := checkName("lstat", name); err != nil {
		return FileInfo{}, err
	}
	fi, err := o.root.Lstat(name)
	if err != nil {
		return FileInfo{}, err
	}
	return FileInfo{Name: name, Mode: fi.Mode().Type(), Size: fi.Size()}, nil
}

// ReadDir implements FS. The types come from the directory entries
// (d_type) where the file system records them, else from lstat.
func (o *OS) ReadDir() ([]DirEntry, error) {
	d, err := o.root.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if pd, err := plainDir(d); err == nil { // no lstat per entry (see plainDir)
		defer pd.Close()
		d = pd
	}
	entries, err := d.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	out := make([]DirEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, DirEntry{Name: e.Name(), Mode: e.Type()})
	}
	slices.SortFunc(out, func(a, b DirEntry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// RenameNoReplace implements FS with link(2) then unlink(2) of oldname:
// link never replaces an existing newname. Between the two, both names
// refer to the file; a crash there leaves oldname behind as a second name
// of newname (for evlog, a temporary that recovery removes). Where the
// file system has no hard links, it falls back to checking that newname
// does not exist and renaming; a file created under newname by another
// process between the check and the rename would then be replaced (nothing
// but a foreign process writing into the locked log directory can do that).
func (o *OS) RenameNoReplace(oldname, newname string) error {
	if err := checkName("rename", oldname); err != nil {
		return err
	}
	if err := checkName("rename", newname); err != nil {
		return err
	}
	if err := o.lstatRegular("rename", oldname, false); err != nil {
		return err
	}
	err := o.root.Link(oldname, newname)
	switch {
	case err == nil:
		return o.root.Remove(oldname)
	case errors.Is(err, fs.ErrExist):
		return err
	case errors.Is(err, errors.ErrUnsupported) || errors.Is(err, fs.ErrPermission) || isNoLinkErr(err):
		if _, serr := o.root.Lstat(newname); serr == nil {
			return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrExist}
		} else if !errors.Is(serr, fs.ErrNotExist) {
			return serr
		}
		return o.root.Rename(oldname, newname)
	default:
		return err
	}
}
