package evlog

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/segment"
)

// dirFiles returns the contents of the regular files of dir, by name.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range es {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// TestBackupIntoOtherLogRefused: a full backup accepts a directory without
// a manifest that holds files named like a backup's, as the leftovers of
// an interrupted backup, and replaces or removes them. The segments of
// another log there (a log directory without LOCK: copied or restored by
// hand, or a backup that lost its manifest) are not leftovers of this
// backup: they may be the only copy of that log's events. The backup must
// refuse the directory and leave them alone.
func TestBackupIntoOtherLogRefused(t *testing.T) {
	l, _, _ := backupLog(t, 30, Options{})
	other, dir, _ := backupLog(t, 40, Options{})
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	// What a copy of its segments holds: no LOCK, no checkpoint (never
	// required).
	ckpts, err := filepath.Glob(filepath.Join(dir, "*"+segment.CheckpointExt))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(ckpts, filepath.Join(dir, LockFile)) {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	before := dirFiles(t, dir)
	if _, err := l.Backup(t.Context(), dir, BackupOptions{}); err == nil {
		t.Errorf("a full backup into a directory holding another log's segments succeeded")
	}
	after := dirFiles(t, dir)
	for name, b := range before {
		if after[name] != b {
			t.Errorf("the other log's %s was replaced or removed by the backup", name)
		}
	}
	if t.Failed() {
		t.Logf("directory before and after (names):\n%s", cmp.Diff(slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after))))
	}
}
