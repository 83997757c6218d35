package evlogcli

import (
	"errors"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/testhook"
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

// open opens NEWDIR, which must exist, for the marker and the start-over;
// close releases it.
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

// openLog opens (creating NEWDIR if need be) the new log for writing:
// evlog.Open.
func (d salvageDst) openLog(opts evlog.Options) (*evlog.Log, error) {
	if d.mem == nil {
		return evlog.Open(d.dir, opts)
	}
	l, err := testhook.Open(d.mem, opts)
	if err != nil {
		return nil, err
	}
	out, ok := l.(*evlog.Log)
	if !ok {
		return nil, errors.New("evlogcli: testhook.Open returned no *evlog.Log")
	}
	return out, nil
}
