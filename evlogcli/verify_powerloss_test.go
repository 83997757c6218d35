package evlogcli

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/testhook"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/replay"
)

// TestVerifySnapshotAfterPowerLoss: a writer (SyncAlways) saves a stats
// snapshot of its last group, then the machine loses power. The group was
// fsynced, so it survives, but its mark — written after the fsync, durable
// only with the next one — may not: a reader serves only up to the last
// durable mark (docs/FORMAT.md, reader rule 9). verify and state, which
// read the log as such a reader, must still take the snapshot for what it
// is: a snapshot of the log, not one beyond its end. On the code before
// the snapshot's Save fsynced the mark, verify found "corrupt
// ….snap 0 snapshot of "stats" claims seq 3, beyond the end of the log
// (2)" (exit 1) on this healthy log, and state fell back from it.
func TestVerifySnapshotAfterPowerLoss(t *testing.T) {
	ctx := t.Context()
	mem, l, _ := threeGroups(t)
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	res, err := replay.State(ctx, l, store, statsSubject, replay.Latest(), statsSpec, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := replay.Save(ctx, store, l.LogID(), statsSubject, statsSpec, res); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyMem(t, mem.CrashClone(vfs.DropUnsynced, rand.New(rand.NewPCG(1, 2))), dir)

	if r := run1(t, "verify", dir); r.code != 0 {
		t.Errorf("verify after a power loss right after a snapshot at seq %d: exit %d: %s\n%s", res.Seq, r.code, r.stderr, r.stdout)
	}
	if r := run1(t, "state", dir); r.code != 0 || strings.Contains(r.stdout+r.stderr, "fallback") {
		t.Errorf("state after a power loss right after a snapshot at seq %d: exit %d: %s\n%s", res.Seq, r.code, r.stderr, r.stdout)
	}
}

// TestVerifySnapshotPastDurableMark: the directory a power loss leaves
// when a writer (SyncAlways) saved a snapshot of its last group without
// fsyncing that group's mark first, as evlog did before the fix
// TestVerifySnapshotAfterPowerLoss checks: the group is committed and
// checksums, no durable mark records it, and a snapshot claims its seq.
// Logs that went through it exist, so verify must not call them corrupt:
// the snapshot is a warning naming what to do (a writer's open keeps the
// group), status 0. A snapshot beyond every committed event (the group
// itself lost) stays corruption. On the code before, the first case
// found "corrupt ….snap 0 snapshot of "stats" claims seq 3, beyond the
// end of the log (2)" (exit 1).
func TestVerifySnapshotPastDurableMark(t *testing.T) {
	ctx := t.Context()
	mem, l, twoGroups := threeGroups(t)
	markLost := mem.CrashClone(vfs.DropUnsynced, rand.New(rand.NewPCG(1, 2))) // the third group's mark not durable
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	res, err := replay.State(ctx, l, store, statsSubject, replay.Latest(), statsSpec, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := replay.Save(ctx, store, l.LogID(), statsSubject, statsSpec, res); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		fsys         *vfs.Mem
		code         int
		stdout, warn string
	}{
		{"mark lost", markLost, 0, "ok 3 1\n",
			fmt.Sprintf("(seq %d) is beyond the events a reader serves (up to seq 2) but within the committed events of the newest segment (up to seq 3)", res.Seq)},
		{"group lost", twoGroups, 1,
			fmt.Sprintf("snapshot of %q claims seq %d, beyond the end of the log (2)", statsSubject.Name, res.Seq), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			graftSnapshots(t, mem, tc.fsys)
			dir := t.TempDir()
			copyMem(t, tc.fsys, dir)
			r := run1(t, "verify", dir)
			if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.warn) {
				t.Errorf("verify: exit %d, want %d with %q on stdout and %q on stderr:\nstdout:\n%s\nstderr:\n%s",
					r.code, tc.code, tc.stdout, tc.warn, r.stdout, r.stderr)
			}
		})
	}
}

// graftSnapshots copies the snapshot files of from into to.
func graftSnapshots(t *testing.T, from, to *vfs.Mem) {
	t.Helper()
	names, err := from.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if !strings.HasSuffix(name, ".snap") {
			continue
		}
		data, err := from.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := to.WriteFile(name, data); err != nil {
			t.Fatal(err)
		}
	}
}

// copyMem copies every file of mem into dir.
func copyMem(t *testing.T, mem *vfs.Mem, dir string) {
	t.Helper()
	names, err := mem.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		data, err := mem.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// threeGroups opens a SyncAlways log on a Mem FS (closed at the test's
// end) and appends three single-event groups to stream s; twoGroups is
// the FS as it was before the third was written.
func threeGroups(t *testing.T) (mem *vfs.Mem, l *evlog.Log, twoGroups *vfs.Mem) {
	t.Helper()
	mem = vfs.NewMem()
	opened, err := testhook.Open(mem, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l = opened.(*evlog.Log)
	t.Cleanup(func() { l.Close() })
	ev := evlog.Envelope{Type: "t", Data: []byte{0xc0}}
	for i := range 3 {
		if i == 2 {
			twoGroups = mem.Clone() // the third group never written
		}
		if _, err := l.Append(t.Context(), "s", evlog.ExpectAny, ev); err != nil {
			t.Fatal(err)
		}
	}
	return mem, l, twoGroups
}
