package segment

import (
	"errors"
	"fmt"

	"github.com/evlog/evlog/internal/vfs"
)

// Create creates the segment file for header h and returns it open for
// appending, positioned after the header. The header is written to a
// temporary file, fsynced, renamed into place (never replacing an
// existing file: that fails with an error matching fs.ErrExist) and the
// directory fsynced, so
// when Create returns the file and its directory entry are durable and a
// crash can never leave a segment with a torn header. A zero h.MarkKey is
// replaced by a random one (NewMarkKey); the header written is returned.
func Create(fsys vfs.FS, h Header) (vfs.File, [HeaderSize]byte, error) {
	return create(fsys, h, false)
}

// ReplaceEmpty is Create for a name that already holds a segment the
// caller has proven to hold no event (only its header): the new file
// replaces it atomically (rename over it). Upgrading an empty newest
// segment to the current format version is its one use.
func ReplaceEmpty(fsys vfs.FS, h Header) (vfs.File, [HeaderSize]byte, error) {
	return create(fsys, h, true)
}

func create(fsys vfs.FS, h Header, replace bool) (vfs.File, [HeaderSize]byte, error) {
	if h.MarkKey == ([8]byte{}) && (h.Version == 0 || h.Version >= 2) {
		k, err := NewMarkKey()
		if err != nil {
			return nil, [HeaderSize]byte{}, fmt.Errorf("evlog/segment: generating a mark key: %w", err)
		}
		h.MarkKey = k
	}
	hb := h.Encode()
	name := FormatFileName(h.BaseSeq, h.Generation)
	tmp := name + TempExt
	f, err := fsys.Create(tmp)
	if err != nil {
		return nil, hb, fmt.Errorf("evlog/segment: creating %s: %w", tmp, err)
	}
	fail := func(err error) (vfs.File, [HeaderSize]byte, error) {
		return nil, hb, errors.Join(err, f.Close(), fsys.Remove(tmp))
	}
	if _, err := f.Write(hb[:]); err != nil {
		return fail(fmt.Errorf("evlog/segment: writing %s: %w", tmp, err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("evlog/segment: syncing %s: %w", tmp, err))
	}
	// Never over an existing file: a file already under the name is not
	// this segment, and replacing it could destroy data.
	rename := fsys.RenameNoReplace
	if replace {
		rename = fsys.Rename
	}
	if err := rename(tmp, name); err != nil {
		return fail(fmt.Errorf("evlog/segment: renaming %s: %w", tmp, err))
	}
	if err := fsys.SyncDir(); err != nil {
		// The rename happened; the caller treats this as a fatal I/O error.
		return nil, hb, errors.Join(fmt.Errorf("evlog/segment: syncing directory after creating %s: %w", name, err), f.Close())
	}
	return f, hb, nil
}
