package evlog

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"time"

	"github.com/evlog/evlog/internal/vfs"
)

// backupView is a read-only FS over a backup directory that shows only the
// files its manifest lists, each cut to the size the manifest gives (an
// interrupted incremental pass may have appended to a file; those bytes
// are not part of the backup). Restore and VerifyBackup read a backup
// through it with the log's own readers.
type backupView struct {
	vfs.FS // vfs.ReadOnly of the directory: every write fails
	files  map[string]BackupedFile
	names  []string
}

func newBackupView(fsys vfs.FS, m *Manifest) *backupView {
	v := &backupView{FS: vfs.ReadOnly(fsys), files: make(map[string]BackupedFile, len(m.Files))}
	for _, f := range m.Files {
		v.files[f.Name] = f
		v.names = append(v.names, f.Name)
	}
	slices.Sort(v.names)
	return v
}

// completeCopy marks an FS whose newest segment is a finished copy: every
// committed batch in it is durable, whatever its marks say (recovery of a
// read-only log serves all of it, see recoverDir).
func (v *backupView) completeCopy() {}

func (v *backupView) entry(op, name string) (BackupedFile, error) {
	f, ok := v.files[name]
	if !ok {
		return f, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return f, nil
}

func (v *backupView) Open(name string) (vfs.File, error) {
	e, err := v.entry("open", name)
	if err != nil {
		return nil, err
	}
	f, err := v.FS.Open(name)
	if err != nil {
		return nil, err
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, err
	}
	if size < e.Size {
		f.Close()
		return nil, fmt.Errorf("%s is %d bytes, the manifest says %d: %w", name, size, e.Size, ErrBackupCorrupt)
	}
	return &prefixFile{File: f, size: e.Size}, nil
}

func (v *backupView) List() ([]string, error) { return slices.Clone(v.names), nil }

func (v *backupView) Stat(name string) (int64, error) {
	e, err := v.entry("stat", name)
	return e.Size, err
}

func (v *backupView) Lstat(name string) (vfs.FileInfo, error) {
	e, err := v.entry("lstat", name)
	if err != nil {
		return vfs.FileInfo{}, err
	}
	info, err := v.FS.Lstat(name)
	if err != nil {
		return info, err
	}
	info.Size = e.Size
	return info, nil
}

func (v *backupView) ReadDir() ([]vfs.DirEntry, error) {
	all, err := v.FS.ReadDir()
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, e := range all {
		if _, ok := v.files[e.Name]; ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// prefixFile is the first size bytes of a file, read-only.
type prefixFile struct {
	vfs.File
	size int64
	off  int64
}

func (f *prefixFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= f.size {
		return 0, io.EOF
	}
	short := false
	if rest := f.size - off; int64(len(p)) > rest {
		p, short = p[:rest], true
	}
	n, err := f.File.ReadAt(p, off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

func (f *prefixFile) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *prefixFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += f.off
	case io.SeekEnd:
		off += f.size
	}
	if off < 0 {
		return 0, fmt.Errorf("evlog: seek to %d", off)
	}
	f.off = off
	return off, nil
}

func (f *prefixFile) Size() (int64, error) { return f.size, nil }

// besidePass runs read, a reader of the backup in fsys, and runs it again
// (a bounded number of times) when it failed while a pass of a backup
// (FollowBackup, an incremental Backup) replaced the manifest: a pass
// removes the files the new manifest no longer lists, which a reader of
// the old one may be about to open. A failure with the same manifest
// before and after is real: a pass never changes or removes the bytes a
// published manifest lists (see backupWriter and docs/BACKUP.md, "Beside
// a backup pass").
func besidePass[T any](fsys vfs.FS, read func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		before := manifestHead(fsys)
		res, err := read()
		if err == nil || i == 20 {
			return res, err
		}
		if after := manifestHead(fsys); after == before {
			return res, err
		}
		time.Sleep(time.Duration(1<<min(i, 5)) * time.Millisecond)
	}
}

// manifestHead returns the manifest's first line (its checksum), or "".
func manifestHead(fsys vfs.FS) string {
	f, err := fsys.Open(ManifestFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	var b [128]byte
	n, _ := f.ReadAt(b[:], 0)
	if i := bytes.IndexByte(b[:n], '\n'); i >= 0 {
		n = i
	}
	return string(b[:n])
}
