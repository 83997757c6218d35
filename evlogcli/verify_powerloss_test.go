package evlogcli

import (
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
	mem := vfs.NewMem()
	opened, err := testhook.Open(mem, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := opened.(*evlog.Log)
	defer l.Close()
	ev := evlog.Envelope{Type: "t", Data: []byte{0xc0}}
	for range 3 {
		if _, err := l.Append(ctx, "s", evlog.ExpectAny, ev); err != nil {
			t.Fatal(err)
		}
	}
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
