package evlogcli

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/filehead"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// An interrupted salvage. Salvage writes evlog.SalvageMarker into NEWDIR
// (atomically, durably) once it has opened the new log and before it
// copies the first event, and removes it once every event copied is
// durable. While the marker is there every open of NEWDIR refuses it
// (evlog.ErrSalvageIncomplete), so a salvage killed or cancelled midway
// never leaves a partial copy that reads as the salvaged log; run again,
// salvage empties NEWDIR of that copy (the marker last) and starts over.
// DIR is never touched, so starting over loses nothing.

// salvageMarkerJSON is what the marker holds, for whoever finds it.
type salvageMarkerJSON struct {
	Source string `json:"source"`
	LogID  string `json:"log_id"` // the new log's
}

// markSalvage writes the marker into dst (fsys), recording logID, the
// new log's ID as 32 hex digits, or "" when the new log is not created
// yet (then no event of the salvage is in dst). It replaces a marker
// there, atomically.
func markSalvage(fsys vfs.FS, dst, src, logID string) error {
	b, err := json.Marshal(salvageMarkerJSON{Source: src, LogID: logID})
	if err != nil {
		return err
	}
	tmp := evlog.SalvageMarker + ".tmp"
	f, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("writing %s into %s: %w", evlog.SalvageMarker, dst, err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, evlog.SalvageMarker)
	}
	if err == nil {
		err = fsys.SyncDir()
	}
	if err != nil {
		return fmt.Errorf("writing %s into %s: %w", evlog.SalvageMarker, dst, err)
	}
	return nil
}

// unmarkSalvage removes the marker from dst (fsys) once the salvage is
// durable.
func unmarkSalvage(fsys vfs.FS, dst string) error {
	if err := fsys.Remove(evlog.SalvageMarker); err != nil {
		return fmt.Errorf("removing %s from %s: %w", evlog.SalvageMarker, dst, err)
	}
	if err := fsys.SyncDir(); err != nil {
		return fmt.Errorf("removing %s from %s: %w", evlog.SalvageMarker, dst, err)
	}
	return nil
}

// restartSalvage empties dst of an interrupted salvage, if it holds one
// (the marker or its temporary): under dst's lock (a salvage still
// running into it makes this fail), it removes the files of the log the
// salvage wrote — segments and snapshots whose header carries the log ID
// the marker records, the checkpoints of those segments, and temporaries
// of them — then the marker, each step made durable, so that killed at
// any point it leaves the marker until nothing else of that salvage is
// left. It checks every file before it removes any: a file named like a
// log's that it cannot prove the salvage's (another log's, copied in
// beside the marker or left in a reused directory) refuses the restart
// with an *evlog.StartOverError naming it, and nothing is removed. Files
// that are not a log's are left alone.
//
// A marker that records no log ID was written before the salvage created
// its new log, so no event of the salvage is in dst: restartSalvage then
// removes nothing and leaves the marker, and returns premarked true (the
// salvage goes on under that marker).
func restartSalvage(d salvageDst) (premarked bool, err error) {
	dst := d.dir
	names, err := d.names()
	if err != nil || !slices.ContainsFunc(names, isSalvageMarker) {
		return false, err
	}
	fsys, closeFS, err := d.open()
	if err != nil {
		return false, err
	}
	defer closeFS()
	lock, err := fsys.Lock(evlog.LockFile)
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			return false, fmt.Errorf("%s holds an interrupted salvage and is in use (another salvage into it is running?): wait for it, or salvage into another directory: %w", dst, err)
		}
		return false, err
	}
	defer lock.Close()
	if names, err = fsys.List(); err != nil {
		return false, err
	}
	if slices.Contains(names, evlog.SalvageMarker) {
		b, err := filehead.ReadMarker(fsys, evlog.SalvageMarker, 1<<20)
		var m salvageMarkerJSON
		if err == nil && json.Unmarshal(b, &m) == nil && m.LogID == "" {
			return true, nil
		}
	}
	remove, err := salvageRestartFiles(fsys, dst, names)
	if err != nil {
		return false, err
	}
	for _, n := range remove {
		if err := fsys.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("removing %s of an interrupted salvage from %s: %w", n, dst, err)
		}
	}
	if err := fsys.SyncDir(); err != nil {
		return false, err
	}
	for _, n := range []string{evlog.SalvageMarker + ".tmp", evlog.SalvageMarker} {
		if err := fsys.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("removing %s from %s: %w", n, dst, err)
		}
	}
	return false, fsys.SyncDir()
}

// salvageRestartFiles returns the files of fsys (dst, listed as names)
// that the interrupted salvage whose marker it holds wrote (see
// restartSalvage), or a *evlog.StartOverError naming the first log file
// it cannot prove that salvage's. With only the marker's temporary, and
// that unreadable (killed writing it, before the first event was
// copied), it returns none: the log in dst, if any, holds no event of
// the salvage, and the salvage's own checks (an empty log, or none)
// decide whether dst can take it.
func salvageRestartFiles(fsys vfs.FS, dst string, names []string) ([]string, error) {
	marker := evlog.SalvageMarker
	if !slices.Contains(names, marker) {
		marker += ".tmp"
	}
	var m salvageMarkerJSON
	var id segment.LogID
	b, err := filehead.ReadMarker(fsys, marker, 1<<20)
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err == nil {
		err = parseSegLogID(m.LogID, &id)
	}
	if err != nil {
		if marker != evlog.SalvageMarker {
			return nil, nil
		}
		return nil, &evlog.StartOverError{Dir: dst, Marker: marker, File: marker,
			Reason: fmt.Sprintf("it cannot be read (%v), so which files the interrupted salvage wrote is unknown", err)}
	}
	ours := map[string]bool{}
	var ckpts, remove []string
	for _, n := range names {
		if isSalvageMarker(n) || n == evlog.LockFile || !salvagedLogFile(n) {
			continue
		}
		base, tmp := strings.CutSuffix(n, segment.TempExt)
		if _, ok := segment.CheckpointSegment(base); ok {
			ckpts = append(ckpts, n) // judged by its segment, below
			continue
		}
		kind := "segment"
		if strings.HasSuffix(base, ".snap") {
			kind = "snapshot"
		}
		got, size, err := filehead.LogID(fsys, n, kind == "snapshot")
		switch {
		case err == nil && got == id:
			ours[n] = true
			remove = append(remove, n)
			continue
		case tmp && size == 0 && err != nil && !errors.Is(err, filehead.ErrNotRegular):
			// A temporary created and never written: it holds nothing.
			remove = append(remove, n)
			continue
		}
		reason := ""
		if err != nil {
			reason = err.Error()
		} else {
			reason = fmt.Sprintf("its header carries log ID %s, the interrupted salvage's is %s", got, id)
		}
		return nil, &evlog.StartOverError{Dir: dst, Marker: marker, File: n, Reason: reason}
	}
	for _, n := range ckpts {
		base, _ := strings.CutSuffix(n, segment.TempExt)
		seg, _ := segment.CheckpointSegment(base)
		if !ours[seg] {
			return nil, &evlog.StartOverError{Dir: dst, Marker: marker, File: n,
				Reason: fmt.Sprintf("it is the checkpoint of %s, which is not a segment of the interrupted salvage's log (%s) in %s", seg, id, dst)}
		}
		remove = append(remove, n)
	}
	return remove, nil
}

// parseSegLogID parses a log ID written as 32 hex digits into id.
func parseSegLogID(s string, id *segment.LogID) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return fmt.Errorf("log ID %q is not %d hex bytes", s, len(id))
	}
	copy(id[:], b)
	return nil
}

// isNewLogFile reports whether name is a file of a log in NEWDIR: its
// LOCK, or one salvagedLogFile names.
func isNewLogFile(name string) bool {
	return name == evlog.LockFile || salvagedLogFile(name)
}

func isSalvageMarker(n string) bool {
	return n == evlog.SalvageMarker || n == evlog.SalvageMarker+".tmp"
}

// salvagedLogFile reports whether name is a file a new log holds: a
// segment, its checkpoint, a snapshot, or a temporary of one.
func salvagedLogFile(name string) bool {
	base, _ := strings.CutSuffix(name, segment.TempExt)
	if b, ok := strings.CutSuffix(base, segment.CheckpointExt); ok {
		base = b + segment.Ext // a checkpoint is named after its segment
	}
	if _, _, ok := segment.ParseFileName(base); ok {
		return true
	}
	return strings.HasSuffix(base, ".snap")
}

// listDir lists dir's names (none when it does not exist).
func listDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}
