package evlogcli

import (
	"errors"
	"slices"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/copyhook"
	"github.com/evlog/evlog/internal/vfs"
)

// salvageDst is NEWDIR as salvage writes it: every write of a salvage
// (the new log, the marker, the start-over) goes through it, so that a
// test can run salvage over an in-memory directory that loses power at
// any write (salvage_crash_test.go). DIR is read through the operating
// system either way.
type salvageDst struct {
	dir string // as given, for messages
	// mem, when not nil, is NEWDIR itself (tests only: an in-memory
	// directory; dir is then only a name); nil: the operating system's
	// directory dir.
	mem vfs.FS
}

// names lists NEWDIR (none when it does not exist).
func (d salvageDst) names() ([]string, error) {
	if d.mem != nil {
		return d.mem.List()
	}
	return listDir(d.dir)
}

// open opens NEWDIR, which must exist, for the start-over; close
// releases it.
func (d salvageDst) open() (fsys vfs.FS, close func() error, err error) {
	if d.mem != nil {
		return d.mem, func() error { return nil }, nil
	}
	o, err := vfs.OpenOS(d.dir)
	if err != nil {
		return nil, nil, err
	}
	return o, o.Close, nil
}

// create opens NEWDIR, creating it (and its missing parents, durably) as
// evlog.Open does; close releases it, after the log opened in it is
// closed.
func (d salvageDst) create() (fsys vfs.FS, close func() error, err error) {
	if d.mem != nil {
		return d.mem, func() error { return nil }, nil
	}
	o, err := vfs.CreateOSPerm(d.dir, evlog.DefaultPerm)
	if err != nil {
		return nil, nil, err
	}
	return o, o.Close, nil
}

// openSalvageLog opens the new log in fsys (NEWDIR, from create) for
// writing, as evlog.Open does, except that the log does not see
// salvage's marker there (Open refuses a directory holding it): salvage
// writes the marker before it creates the new log.
func openSalvageLog(fsys vfs.FS, opts evlog.Options) (*evlog.Log, error) {
	l, err := copyhook.Open(unmarkedFS{fsys}, opts)
	if err != nil {
		return nil, err
	}
	out, ok := l.(*evlog.Log)
	if !ok {
		return nil, errors.New("evlogcli: copyhook.Open returned no *evlog.Log")
	}
	return out, nil
}

// unmarkedFS is a directory without salvage's marker (and its
// temporary) in its listings.
type unmarkedFS struct{ vfs.FS }

func (u unmarkedFS) List() ([]string, error) {
	names, err := u.FS.List()
	return slices.DeleteFunc(names, isSalvageMarker), err
}

func (u unmarkedFS) ReadDir() ([]vfs.DirEntry, error) {
	ents, err := u.FS.ReadDir()
	return slices.DeleteFunc(ents, func(e vfs.DirEntry) bool { return isSalvageMarker(e.Name) }), err
}
