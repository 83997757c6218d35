package evlog

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// restoreMidway is a directory that a restore starts writing into between
// a reader's first look at it (List: no marker, an empty directory) and
// its listing of the files it opens (ReadDir): midway, when set, runs at
// the next ReadDir and returns the directory the reader sees from then on.
type restoreMidway struct {
	vfs.FS
	midway func() vfs.FS
}

func (f *restoreMidway) ReadDir() ([]vfs.DirEntry, error) {
	if f.midway != nil {
		f.FS, f.midway = f.midway(), nil
	}
	return f.FS.ReadDir()
}

// TestReadersRefuseARestoreMidway: a reader (OpenReadOnly, Refresh,
// Verify) beside a restore into the directory it reads. A restore writes
// RESTORING first and removes it last, so any listing that shows the
// restore's files before it is complete shows the marker too; a reader
// that checked for the marker only before it listed the directory served
// the segments written so far as a complete log (and Verify called them
// sound). For a restore killed at each of its ops, a reader whose listing
// holds the marker must refuse with ErrRestoreIncomplete; one whose
// listing does not must serve no event or the whole restored log.
func TestReadersRefuseARestoreMidway(t *testing.T) {
	cs := newCrashSource(t)
	restore := memRestore(t, cs)
	probe := vfs.NewMem()
	if err := restore(probe); err != nil {
		t.Fatal(err)
	}
	total := probe.Ops()
	// killedAt returns the directory a restore into mem killed at op k
	// leaves (k = total: not killed).
	killedAt := func(mem *vfs.Mem, k int) vfs.FS {
		mem.CrashAt(mem.Ops() + k)
		if err := restore(mem); (err == nil) != (k == total) {
			t.Fatalf("k=%d: the restore: %v", k, err)
		}
		return vfs.ReadOnly(mem.Clone())
	}
	readers := []struct {
		name string
		// read reads the directory the restore killed at op k left, and
		// returns the events it serves as the log.
		read func(k int) ([]Envelope, vfs.FS, error)
	}{
		{"open read-only", func(k int) ([]Envelope, vfs.FS, error) {
			mem := vfs.NewMem()
			var seen vfs.FS
			fsys := &restoreMidway{FS: vfs.ReadOnly(mem), midway: func() vfs.FS { seen = killedAt(mem, k); return seen }}
			l, err := openFS(fsys, Options{}, true)
			if err != nil {
				return nil, seen, err
			}
			defer l.Close()
			return readAll(t, l), seen, nil
		}},
		{"refresh", func(k int) ([]Envelope, vfs.FS, error) {
			mem := vfs.NewMem()
			fsys := &restoreMidway{FS: vfs.ReadOnly(mem)}
			l, err := openFS(fsys, Options{}, true)
			if err != nil {
				t.Fatalf("opening the empty directory: %v", err)
			}
			defer l.Close()
			var seen vfs.FS
			fsys.midway = func() vfs.FS { seen = killedAt(mem, k); return seen }
			if err := l.Refresh(); err != nil {
				return nil, seen, err
			}
			return readAll(t, l), seen, nil
		}},
		{"verify", func(k int) ([]Envelope, vfs.FS, error) {
			mem := vfs.NewMem()
			var seen vfs.FS
			fsys := &restoreMidway{FS: vfs.ReadOnly(mem), midway: func() vfs.FS { seen = killedAt(mem, k); return seen }}
			if err := checkLogDir(fsys); err != nil {
				t.Fatalf("the empty directory: %v", err)
			}
			rep, err := verifyBeside(t.Context(), fsys)
			if err != nil {
				return nil, seen, err
			}
			if rep.Corrupt() {
				return nil, seen, fmt.Errorf("verify reports damage: %v", rep.Findings)
			}
			// Verify says the log is sound: what it vouched for.
			l, err := openFS(seen, Options{}, true)
			if err != nil {
				return nil, seen, fmt.Errorf("verify passed a directory that open refuses: %w", err)
			}
			defer l.Close()
			return readAll(t, l), seen, nil
		}},
	}
	for _, r := range readers {
		t.Run(r.name, func(t *testing.T) {
			for k := range total + 1 {
				got, seen, err := r.read(k)
				names, lerr := seen.List()
				if lerr != nil {
					t.Fatal(lerr)
				}
				marked := slices.Contains(names, RestoreMarker) || slices.Contains(names, RestoreMarker+".tmp")
				switch {
				case marked && !errors.Is(err, ErrRestoreIncomplete):
					t.Errorf("k=%d/%d: the directory holds the restore's marker (%q); the reader served %d events (%v), want ErrRestoreIncomplete", k, total, names, len(got), err)
				case !marked && err != nil:
					t.Errorf("k=%d/%d: no marker (%q), the reader failed: %v", k, total, names, err)
				case !marked && len(got) != 0 && !envsEqual(got, cs.all):
					t.Errorf("k=%d/%d: the reader served %d events, want none or the whole restored log's %d", k, total, len(got), len(cs.all))
				}
			}
		})
	}
}
