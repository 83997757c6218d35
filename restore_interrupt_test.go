package evlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// TestRestoreStartOverKeepsMarker: a restore into a directory holding an
// interrupted restore first removes that restore's files. Killed or
// crashed at any op of that (or later), it must leave a directory a third
// restore accepts — one still holding RestoreMarker, or empty — and that
// restore completes. The interrupted restore here holds (temporaries of)
// snapshot files named a… and f…, which sort after RESTORING: removing files in listing
// order removed the marker before them, and a kill then left stray
// snapshots and no marker ("not empty").
func TestRestoreStartOverKeepsMarker(t *testing.T) {
	cs := newCrashSource(t)
	restoreOpts := memRestoreOpts(t, cs, RestoreOptions{})
	restore := func(dst vfs.FS) error {
		_, err := restoreOpts(dst)
		return err
	}
	// The interrupted restore: every file written, the marker not yet
	// removed; plus the temporaries of snapshots of its plan that sort
	// after the marker. (A restore starting over removes only files its
	// marker proves the interrupted restore's.)
	interrupted := vfs.NewMem()
	plan, err := restoreOpts(interrupted)
	if err != nil {
		t.Fatal(err)
	}
	later := []string{"aaaaaaaaaaaaaaaa-00000000000000000007.snap", "ffffffffffffffff-00000000000000000009.snap"}
	for _, name := range later {
		plan.Files = append(plan.Files, RestoreFile{Name: name, Kind: kindSnapshot, Action: actionCopy})
		if err := interrupted.WriteFile(name+".tmp", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	marker, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	if err := interrupted.WriteFile(RestoreMarker, marker); err != nil {
		t.Fatal(err)
	}
	if err := interrupted.SyncDir(); err != nil {
		t.Fatal(err)
	}
	probe := interrupted.Clone()
	base := probe.Ops()
	if err := restore(probe); err != nil {
		t.Fatal(err)
	}
	total := probe.Ops() - base
	checked := 0
	for k := range total {
		m := interrupted.Clone()
		m.CrashAt(m.Ops() + k)
		if err := restore(m); !errors.Is(err, vfs.ErrCrashed) {
			t.Fatalf("k=%d: the restore: %v, want a crash", k, err)
		}
		states := map[string]*vfs.Mem{"killed": m.Clone()}
		for _, model := range vfs.CrashModels() {
			states[model.String()] = m.CrashClone(model, rand.New(rand.NewPCG(uint64(k), uint64(model))))
		}
		for what, after := range states {
			names, err := after.List()
			if err != nil {
				t.Fatal(err)
			}
			if err := checkRestoreNames("r", names); err != nil {
				// Refused as not empty: only a restore that completed (its
				// marker removed) may leave that.
				if msg := restoredWhole(t, after, cs); msg != "" {
					t.Errorf("k=%d/%d %s: a new restore refuses the directory (%v), and %s", k, total, what, err, msg)
				}
				checked++
				continue
			}
			if err := restore(after); err != nil {
				t.Errorf("k=%d/%d %s: the new restore: %v", k, total, what, err)
				continue
			}
			if msg := restoredWhole(t, after, cs); msg != "" {
				t.Errorf("k=%d/%d %s: after the new restore, %s", k, total, what, msg)
			}
			if left, _ := after.List(); slices.Contains(left, RestoreMarker) {
				t.Errorf("k=%d/%d %s: the marker survived a complete restore", k, total, what)
			}
			checked++
		}
	}
	if want := total * (1 + len(vfs.CrashModels())); checked != want {
		t.Fatalf("checked %d states, want %d", checked, want)
	}
	t.Log(fmt.Sprintf("crashed the second restore at each of %d ops, killed and under %d crash models", total, len(vfs.CrashModels())))
}

// restoredWhole says what is wrong unless fsys holds the whole log of cs.
func restoredWhole(t *testing.T, fsys vfs.FS, cs *crashSource) string {
	l, err := openFS(fsys, Options{}, true)
	if err != nil {
		return fmt.Sprintf("opening the restored log: %v", err)
	}
	defer l.Close()
	if got := readAll(t, l); !envsEqual(got, cs.all) {
		return fmt.Sprintf("the restored log holds %d events, want %d", len(got), len(cs.all))
	}
	return ""
}
