package evlogcli

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/snapshot"
)

// TestBackupSnapshotSizeFlag: evlogctl restore and backup --verify bound a
// snapshot's decompressed size by 64 MiB by default, which refused as
// damaged every backup of a log whose Options.Snapshot.MaxRawSize allows
// larger snapshots (restore had no way to raise it). --max-snapshot-size
// sets the bound for both; here a bound below a small snapshot's size
// shows that each command applies it.
func TestBackupSnapshotSizeFlag(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src, bdir := filepath.Join(dir, "log"), filepath.Join(dir, "b")
	l, err := evlog.Open(src, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Append(ctx, "s", evlog.ExpectAny, evlog.Envelope{Type: "e", Data: []byte("\xa1x")})
	if err != nil {
		t.Fatal(err)
	}
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Save(ctx, snapshot.Meta{Name: "all", LogID: l.LogID(), Seq: p.Seq, Time: time.Now()}, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "backup", src, bdir)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"backup", "--verify", bdir}, 0},
		{[]string{"backup", "--verify", bdir, "--max-snapshot-size", "100"}, 1},
		{[]string{"backup", "--verify", bdir, "--max-snapshot-size", "2000"}, 0},
		{[]string{"restore", bdir, filepath.Join(dir, "r1"), "--max-snapshot-size", "100"}, 1},
		{[]string{"restore", bdir, filepath.Join(dir, "r2"), "--max-snapshot-size", "2000"}, 0},
		{[]string{"restore", bdir, filepath.Join(dir, "r3"), "--max-snapshot-size", "-1"}, 2},
		{[]string{"backup", src, filepath.Join(dir, "b2"), "--max-snapshot-size", "100"}, 2},
	} {
		if r := run1(t, tc.args...); r.code != tc.code {
			t.Errorf("evlogctl %q: exit %d, want %d (%v)", tc.args, r.code, tc.code, r.err)
		}
	}
}
