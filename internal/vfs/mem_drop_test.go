package vfs

import (
	"errors"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// allModels is every crash model.
func allModels() []CrashModel { return CrashModels() }

// crashStates returns what survives a power loss of m now under every
// model, KeepPrefix and Garbage under a few seeds each, by name.
func crashStates(t *testing.T, m *Mem) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, model := range allModels() {
		for seed := range uint64(8) {
			out[model.String()+"/"+string(rune('0'+seed))] = contents(t, m.CrashClone(model, rand.New(rand.NewPCG(seed, 1))))
		}
	}
	return out
}

// createSynced creates name through fsys with data, fsynced.
func createSynced(t *testing.T, fsys FS, name, data string) {
	t.Helper()
	f := must[File](t)(fsys.Create(name))
	must[int](t)(f.Write([]byte(data)))
	noErr(t, f.Sync())
	noErr(t, f.Close())
}

// TestDropDirOps: the directory operations pending when DropDirOps is
// called (a failed directory fsync that lost them) stay visible but are
// in no crash model's state, and a later successful SyncDir does not make
// them durable; the operations after it do become durable.
func TestDropDirOps(t *testing.T) {
	tests := []struct {
		name string
		// before runs before the drop, after between the drop and the
		// final SyncDir; m has "old" (durable, "v1") to start with.
		before, after func(t *testing.T, m *Mem)
		list          []string          // names listed at the end
		want          map[string]string // every crash state, after the final SyncDir
	}{
		{
			name: "created and renamed into place, lost",
			before: func(t *testing.T, m *Mem) {
				createSynced(t, m, "new.tmp", "v2")
				noErr(t, m.Rename("new.tmp", "new"))
			},
			list: []string{"new", "old"},
			want: map[string]string{"old": "v1"},
		},
		{
			name:   "a lost removal brings the file back",
			before: func(t *testing.T, m *Mem) { noErr(t, m.Remove("old")) },
			list:   nil,
			want:   map[string]string{"old": "v1"},
		},
		{
			name: "created again after the drop: durable",
			before: func(t *testing.T, m *Mem) {
				createSynced(t, m, "new.tmp", "v2")
				noErr(t, m.Rename("new.tmp", "new"))
			},
			after: func(t *testing.T, m *Mem) { noErr(t, m.Rename("new", "again")) },
			list:  []string{"again", "old"},
			want:  map[string]string{"again": "v2", "old": "v1"},
		},
		{
			name:   "truncated by Create after the drop: still lost",
			before: func(t *testing.T, m *Mem) { createSynced(t, m, "new", "v2") },
			after:  func(t *testing.T, m *Mem) { createSynced(t, m, "new", "v3") },
			list:   []string{"new", "old"},
			want:   map[string]string{"old": "v1"},
		},
		{
			name:   "operations after the drop: durable",
			before: func(t *testing.T, m *Mem) { createSynced(t, m, "lost", "x") },
			after: func(t *testing.T, m *Mem) {
				createSynced(t, m, "kept", "k")
				noErr(t, m.Remove("old"))
				noErr(t, m.WriteFile("fixture", []byte("f")))
			},
			list: []string{"fixture", "kept", "lost"},
			want: map[string]string{"fixture": "f", "kept": "k"},
		},
		{
			name: "a fixture written after the drop over a pending removal",
			after: func(t *testing.T, m *Mem) {
				noErr(t, m.Remove("old"))
				noErr(t, m.WriteFile("old", []byte("v9")))
			},
			list: []string{"old"},
			want: map[string]string{"old": "v9"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMem()
			noErr(t, m.WriteFile("old", []byte("v1")))
			if tc.before != nil {
				tc.before(t, m)
			}
			m.DropDirOps()
			if tc.after != nil {
				tc.after(t, m)
			}
			noErr(t, m.SyncDir())
			if diff := cmp.Diff(tc.list, must[[]string](t)(m.List())); diff != "" {
				t.Errorf("List (-want +got):\n%s", diff)
			}
			for _, c := range []*Mem{m, m.Clone()} {
				for state, got := range crashStates(t, c) {
					if diff := cmp.Diff(tc.want, got); diff != "" {
						t.Errorf("%s (-want +got):\n%s", state, diff)
					}
				}
			}
		})
	}
}

// TestDropDirOpsPendingAfter: the operations after a drop stay pending
// until a SyncDir, as any: KeepPrefix may keep a prefix of them, the other
// models none; the lost ones are in no state.
func TestDropDirOpsPendingAfter(t *testing.T) {
	m := NewMem()
	noErr(t, m.WriteFile("old", []byte("v1")))
	createSynced(t, m, "lost", "x")
	m.DropDirOps()
	createSynced(t, m, "a", "a")
	createSynced(t, m, "b", "b")
	want := map[string]bool{"old": true, "a old": true, "a b old": true}
	seen := map[string]bool{}
	for state, got := range crashStates(t, m) {
		names := ""
		for _, n := range []string{"a", "b", "lost", "old"} {
			if _, ok := got[n]; ok {
				names += " " + n
			}
		}
		names = names[min(1, len(names)):]
		if !want[names] {
			t.Errorf("%s: names %q, want one of %v", state, names, want)
		}
		seen[names] = true
	}
	if !seen["a b old"] || !seen["old"] {
		t.Errorf("crash states had names %v; want KeepPrefix to keep all pending and the others none", seen)
	}
}

// TestDropDirOpsIsNoOperation: DropDirOps is not counted by Ops and is not
// a crash point.
func TestDropDirOpsIsNoOperation(t *testing.T) {
	m := NewMem()
	m.CrashAt(0)
	m.DropDirOps()
	if m.Ops() != 0 || m.Crashed() {
		t.Errorf("DropDirOps: Ops = %d, Crashed = %v; want 0, false", m.Ops(), m.Crashed())
	}
}

// TestDropOnSyncDirFailure: the injector drops the pending directory
// operations exactly when it fails an OpSyncDir.
func TestDropOnSyncDirFailure(t *testing.T) {
	tests := []struct {
		name   string
		inject Injector
		want   map[string]string
	}{
		{"no failure", nil, map[string]string{"new": "v2"}},
		{"failing remove", FailKind(OpRemove, 0, EIO("x")), map[string]string{"new": "v2"}},
		{"failing syncdir", FailKind(OpSyncDir, 0, EIO(".")), map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMem()
			f := NewFaulty(m, DropOnSyncDirFailure(m, tc.inject))
			createSynced(t, f, "new", "v2")
			f.Remove("missing")
			f.SyncDir() // fails or not
			noErr(t, f.SyncDir())
			for state, got := range crashStates(t, m) {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("%s (-want +got):\n%s", state, diff)
				}
			}
		})
	}
}

// TestDropModelHasTeeth: a protocol that saves a new file, retries its
// failed directory fsync and then removes the old file on the word of the
// retry loses both to a power loss when the failed fsync dropped the new
// entry; without the drop (a Faulty's failure alone) every crash model,
// RemovalsFirst included, lets that bug through.
func TestDropModelHasTeeth(t *testing.T) {
	for _, tc := range []struct {
		name    string
		drop    bool
		wantBad bool
	}{
		{"failure alone", false, false},
		{"failure drops", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMem()
			noErr(t, m.WriteFile("snap.1", []byte("one")))
			inject := FailKind(OpSyncDir, 0, EIO("."))
			if tc.drop {
				inject = DropOnSyncDirFailure(m, inject)
			}
			f := NewFaulty(m, inject)
			createSynced(t, f, "snap.tmp", "two")
			noErr(t, f.Rename("snap.tmp", "snap.2"))
			if err := f.SyncDir(); !errors.Is(err, syscall.EIO) {
				t.Fatalf("SyncDir = %v, want EIO", err)
			}
			noErr(t, f.SyncDir()) // the buggy retry
			noErr(t, f.Remove("snap.1"))
			var bad []string
			check := func(state string, got map[string]string) {
				if got["snap.1"] == "" && got["snap.2"] == "" {
					bad = append(bad, state)
				}
			}
			for state, got := range crashStates(t, m) {
				check("before the last SyncDir, "+state, got)
			}
			noErr(t, f.SyncDir())
			for state, got := range crashStates(t, m) {
				check("after the last SyncDir, "+state, got)
			}
			if got := len(bad) > 0; got != tc.wantBad {
				t.Errorf("states losing both snapshots: %v; want some: %v", bad, tc.wantBad)
			}
		})
	}
}

// TestRemovalsFirst: the durable namespace with every removal since the
// last SyncDir applied, and nothing else pending; synced data only.
func TestRemovalsFirst(t *testing.T) {
	m := NewMem()
	noErr(t, m.WriteFile("a", []byte("a")))
	noErr(t, m.WriteFile("b", []byte("b")))
	noErr(t, m.WriteFile("c", []byte("c")))
	createSynced(t, m, "new", "n")
	noErr(t, m.Rename("a", "d"))
	noErr(t, m.Remove("b"))
	g := must[File](t)(m.OpenReadWrite("c"))
	must[int](t)(g.Write([]byte("unsynced")))
	want := map[string]string{"a": "a", "c": "c"}
	if diff := cmp.Diff(want, contents(t, m.CrashClone(RemovalsFirst, nil))); diff != "" {
		t.Errorf("RemovalsFirst (-want +got):\n%s", diff)
	}
	// After a SyncDir nothing is pending: the same as DropUnsynced.
	noErr(t, m.SyncDir())
	noErr(t, g.Sync())
	if diff := cmp.Diff(contents(t, m.CrashClone(DropUnsynced, nil)), contents(t, m.CrashClone(RemovalsFirst, nil))); diff != "" {
		t.Errorf("RemovalsFirst after SyncDir differs from DropUnsynced (-drop +removals):\n%s", diff)
	}
}
