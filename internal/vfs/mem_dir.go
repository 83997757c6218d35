package vfs

// Lstat implements FS. Every Mem file is a regular file.
func (m *Mem) Lstat(name string) (FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.alive("lstat", name); err != nil {
		return FileInfo{}, err
	}
	if err := checkName("lstat", name); err != nil {
		return FileInfo{}, err
	}
	ino, err := m.lookup("lstat", name)
	if err != nil {
		return FileInfo{}, err
	}
	return FileInfo{Name: name, Size: int64(len(ino.data))}, nil
}

// ReadDir implements FS.
func (m *Mem) ReadDir() ([]DirEntry, error) {
	names, err := m.List()
	if err != nil {
		return nil, err
	}
	out := make([]DirEntry, len(names))
	for i, n := range names {
		out[i] = DirEntry{Name: n}
	}
	return out, nil
}

// RenameNoReplace implements FS. It is one directory operation, atomic
// like Rename (OS does it with link and unlink; see OS.RenameNoReplace).
func (m *Mem) RenameNoReplace(oldname, newname string) error {
	return m.rename(oldname, newname, true)
}
