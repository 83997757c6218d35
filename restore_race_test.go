package evlog

import (
	"errors"
	"io"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// restoreBeforeLock is an FS on which a restore into the directory starts
// and is killed between a writer's check of the directory and its taking
// of the lock: a restore takes the same lock, so it runs exactly then, and
// leaves its marker (and whatever it had written) behind.
type restoreBeforeLock struct {
	vfs.FS
	mem  *vfs.Mem
	done bool
}

func (f *restoreBeforeLock) Lock(name string) (io.Closer, error) {
	if name == LockFile && !f.done {
		f.done = true
		if err := f.mem.WriteFile(RestoreMarker, []byte("{}\n")); err != nil {
			return nil, err
		}
	}
	return f.FS.Lock(name)
}

// TestOpenRefusesRestoreMarkerAfterLock: a writer must look for the
// marker of an interrupted restore once it holds the lock, not only
// before. A writer that took the directory as a log would append to the
// interrupted restore's files, and the restore run again (as the marker
// asks) starts over by removing every segment in it: the events appended
// in between, acknowledged, would be gone.
func TestOpenRefusesRestoreMarkerAfterLock(t *testing.T) {
	mem := vfs.NewMem()
	fsys := &restoreBeforeLock{FS: mem, mem: mem}
	l, err := openFS(fsys, crashOpts(SyncAlways), false)
	if err == nil {
		l.Close()
	}
	if !errors.Is(err, ErrRestoreIncomplete) {
		t.Fatalf("open while a restore was interrupted between its check of the directory and its lock: got %v, want ErrRestoreIncomplete", err)
	}
	if _, err := mem.Stat(RestoreMarker); err != nil {
		t.Fatalf("the marker: %v", err)
	}
}
