package evlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/evlog/evlog/internal/filehead"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// ErrStartOverRefused is matched by the error of a restore (and of
// evlogctl salvage) run again into a directory holding the marker of an
// interrupted run (RestoreMarker, SalvageMarker) beside a file it cannot
// prove that run wrote: another log's, unreadable, or not one of the
// run's files. Nothing is removed: starting over would destroy it.
var ErrStartOverRefused = errors.New("evlog: a file beside the marker of an interrupted run is not that run's")

// StartOverError says which file kept a restore or salvage from starting
// over, and why. It matches ErrStartOverRefused.
type StartOverError struct {
	Dir    string // the directory restored or salvaged into
	Marker string // RestoreMarker or SalvageMarker (or its temporary)
	File   string // the file that is not the interrupted run's
	Reason string
}

func (e *StartOverError) Error() string {
	return fmt.Sprintf("evlog: %s holds %s (an interrupted run, which a new run starts over by removing the files it wrote) and %s, which is not that run's: %s; nothing was removed: move %s out of %s and run again, or give another directory (if %s is a log of yours and %s was copied into it, remove %s instead)",
		e.Dir, e.Marker, e.File, e.Reason, e.File, e.Dir, e.Dir, e.Marker, e.Marker)
}

func (e *StartOverError) Unwrap() error { return ErrStartOverRefused }

// maxMarkerSize bounds the size of a marker read to start over.
const maxMarkerSize = 64 << 20

// ignoredDirEntry reports whether a directory entry named name is one that
// Open, Restore and evlogctl salvage leave alone and count as nothing:
// a hidden file (".DS_Store") or, when it is a directory, lost+found (a
// freshly made file system's root holds it).
func ignoredDirEntry(name string, isDir bool) bool {
	return strings.HasPrefix(name, ".") || (isDir && name == "lost+found")
}

// restartFiles returns the files of fsys (dir, listed as names) that the
// interrupted restore whose marker it holds wrote, for a restore starting
// over to remove: a file its plan (the marker) lists whose header carries
// the plan's new log ID, or the temporary of one, by exact name. It
// validates every name before anything is removed and fails with a
// *StartOverError naming the first file it cannot prove that restore's.
// LockFile, the marker and its temporary, and ignored entries are not
// returned (the marker's temporary is, when the marker itself is there).
func restartFiles(fsys vfs.FS, dir string, names []string) ([]string, error) {
	var plan *RestorePlan
	var id segment.LogID
	marker := RestoreMarker + ".tmp" // killed writing the marker: nothing else written
	for _, n := range names {
		if n != RestoreMarker {
			continue
		}
		marker = RestoreMarker
		bad := func(reason string) error {
			return &StartOverError{Dir: dir, Marker: marker, File: marker, Reason: reason + " (it cannot tell which files the interrupted restore wrote)"}
		}
		b, err := filehead.ReadMarker(fsys, RestoreMarker, maxMarkerSize)
		if err != nil {
			return nil, bad(err.Error())
		}
		plan = new(RestorePlan)
		if err := json.Unmarshal(b, plan); err != nil {
			return nil, bad(fmt.Sprintf("it is not a restore plan (%v)", err))
		}
		if id, err = parseLogID(plan.NewLogID); err != nil {
			return nil, bad(fmt.Sprintf("its new_log_id: %v", err))
		}
	}
	planned := map[string]string{} // name → kind, of the files the plan writes
	if plan != nil {
		for _, f := range plan.Files {
			if f.Action != actionLeave {
				planned[f.Name] = f.Kind
			}
		}
	}
	var remove []string
	for _, n := range names {
		switch {
		case n == LockFile || n == RestoreMarker || ignoredDirEntry(n, false):
			continue
		case n == RestoreMarker+".tmp":
			if plan != nil {
				remove = append(remove, n)
			}
			continue
		}
		refuse := func(reason string) error {
			return &StartOverError{Dir: dir, Marker: marker, File: n, Reason: reason}
		}
		if plan == nil {
			return nil, refuse("the restore was interrupted while it wrote its marker, before it wrote any other file")
		}
		base, tmp := strings.CutSuffix(n, ".tmp")
		kind, ok := planned[base]
		switch {
		case !ok:
			return nil, refuse(fmt.Sprintf("the plan in %s does not list it", RestoreMarker))
		case tmp:
			remove = append(remove, n) // the temporary of a file of the plan
			continue
		}
		got, _, err := filehead.LogID(fsys, n, kind == kindSnapshot)
		if err != nil {
			return nil, refuse(err.Error())
		}
		if got != id {
			return nil, refuse(fmt.Sprintf("its header carries log ID %s, the interrupted restore's is %s", got, id))
		}
		remove = append(remove, n)
	}
	return remove, nil
}
