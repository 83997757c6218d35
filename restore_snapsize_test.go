package evlog

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog/snapshot"
)

// TestRestoreLeavesOutSnapshotOverTheBound: a backup holding one snapshot
// over the restore's snapshot size bound (a log whose
// Options.Snapshot.MaxRawSize allows larger ones, restored with the
// default bound) was refused whole, events and all. Events are the truth
// and snapshots derived: the restore restores the events and every other
// snapshot, leaves that one out and says why, in the plan (dry run too).
func TestRestoreLeavesOutSnapshotOverTheBound(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	src := filepath.Join(dir, "log")
	const bound = 1000
	l, err := Open(src, Options{Snapshot: snapshot.Options{MaxRawSize: 4 * bound}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, "s", 5)
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	save := func(name string, seq uint64, size int) snapshot.Meta {
		t.Helper()
		tm, err := l.eventTime(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		m, err := store.Save(ctx, snapshot.Meta{Name: name, LogID: l.LogID(), Seq: seq, Time: tm}, make([]byte, size))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	small := save("small", 3, 10)
	big := save("big", 4, 2*bound)
	bdir := filepath.Join(dir, "backup")
	if _, err := l.Backup(ctx, bdir, BackupOptions{NoLink: true}); err != nil {
		t.Fatal(err)
	}
	want := readAll(t, l)

	for _, dry := range []bool{true, false} {
		rdir := filepath.Join(dir, "restored")
		plan, err := Restore(ctx, bdir, rdir, RestoreOptions{MaxSnapshotSize: bound, DryRun: dry})
		if err != nil {
			t.Fatalf("Restore (dry run %v): %v; want the events and the good snapshot restored, the big one left out", dry, err)
		}
		byName := map[string]RestoreFile{}
		for _, f := range plan.Files {
			byName[f.Name] = f
		}
		if f := byName[small.File]; f.Action != actionCopy || f.Reason != "" {
			t.Errorf("dry run %v: the snapshot within the bound: %+v, want copied", dry, f)
		}
		if f := byName[big.File]; f.Action != actionLeave || f.Reason == "" {
			t.Errorf("dry run %v: the snapshot over the bound: %+v, want left out with a reason", dry, f)
		}
		if got := plan.SnapshotsLeftOut(); len(got) != 1 || got[0].Name != big.File {
			t.Errorf("dry run %v: SnapshotsLeftOut = %+v, want %s", dry, got, big.File)
		}
		if plan.EndSeq != 5 {
			t.Errorf("dry run %v: EndSeq %d, want 5", dry, plan.EndSeq)
		}
	}

	r, err := OpenReadOnly(filepath.Join(dir, "restored"), Options{Snapshot: snapshot.Options{MaxRawSize: 4 * bound}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if diff := cmp.Diff(want, readAll(t, r), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("restored events (-source +restored):\n%s", diff)
	}
	rs, err := r.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	ms, err := rs.List("")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].File != small.File {
		t.Errorf("restored snapshots %+v, want only %s", ms, small.File)
	}
}
