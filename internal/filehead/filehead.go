// Package filehead reads what a log's files say about themselves in
// their headers, for the tools that must tell a log's own files from
// others' before removing any (a restore or salvage starting over).
// It reads only the first bytes of a regular file, never follows a
// symbolic link, and allocates at most a header or a bounded marker.
package filehead

import (
	"errors"
	"fmt"
	"io"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

// ErrNotRegular is matched by the error for a name that is not a regular
// file (a symbolic link, a directory, a FIFO, a device).
var ErrNotRegular = errors.New("not a regular file")

// LogID returns the log ID in the header of the regular file name of
// fsys, a segment or (snap) a snapshot, and the file's size (also with
// most errors, once the file was found).
func LogID(fsys vfs.FS, name string, snap bool) (segment.LogID, int64, error) {
	info, err := fsys.Lstat(name)
	if err != nil {
		return segment.LogID{}, 0, err
	}
	if !info.Regular() {
		return segment.LogID{}, 0, fmt.Errorf("it is a %s, %w", vfs.TypeName(info.Mode), ErrNotRegular)
	}
	f, err := fsys.Open(name)
	if err != nil {
		return segment.LogID{}, info.Size, err
	}
	defer f.Close()
	if snap {
		m, err := snapshot.ReadMeta(name, f, info.Size)
		if err != nil {
			return segment.LogID{}, info.Size, fmt.Errorf("its snapshot header cannot be read: %w", err)
		}
		return m.LogID, info.Size, nil
	}
	b := make([]byte, min(info.Size, segment.HeaderSize))
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return segment.LogID{}, info.Size, err
	}
	h, err := segment.DecodeHeader(b)
	if err != nil {
		return segment.LogID{}, info.Size, fmt.Errorf("its segment header cannot be read: %v", err)
	}
	return h.LogID, info.Size, nil
}

// ReadMarker reads the regular file name of fsys, a marker of at most
// max bytes.
func ReadMarker(fsys vfs.FS, name string, max int64) ([]byte, error) {
	info, err := fsys.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !info.Regular() {
		return nil, fmt.Errorf("it is a %s, %w", vfs.TypeName(info.Mode), ErrNotRegular)
	}
	if info.Size > max {
		return nil, fmt.Errorf("it is %d bytes, more than any marker (%d)", info.Size, max)
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}
