package vfs

// NoSync is an FS whose fsyncs are acknowledged but not done, as chosen:
// an engine without its fsyncs, which a crash loop's teeth test must
// catch. For tests.
type NoSync struct {
	FS
	// Dirs: SyncDir returns nil and syncs nothing.
	Dirs bool
	// Files: Sync of a file that Create or OpenReadWrite opened, when
	// Files accepts its name, returns nil and syncs nothing (nil: none;
	// AnyFile: all).
	Files func(name string) bool
}

// AnyFile accepts every name (NoSync.Files).
func AnyFile(string) bool { return true }

// SyncDir syncs the directory below unless Dirs is set.
func (n NoSync) SyncDir() error {
	if n.Dirs {
		return nil
	}
	return n.FS.SyncDir()
}

// Create creates name below; its Sync does nothing if Files accepts name.
func (n NoSync) Create(name string) (File, error) {
	f, err := n.FS.Create(name)
	return n.wrap(name, f, err)
}

// OpenReadWrite opens name below; its Sync does nothing if Files accepts
// name.
func (n NoSync) OpenReadWrite(name string) (File, error) {
	f, err := n.FS.OpenReadWrite(name)
	return n.wrap(name, f, err)
}

func (n NoSync) wrap(name string, f File, err error) (File, error) {
	if err != nil || n.Files == nil || !n.Files(name) {
		return f, err
	}
	return noSyncFile{f}, nil
}

type noSyncFile struct{ File }

func (noSyncFile) Sync() error { return nil }
