package evlogcli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/snapshot"
)

// TestBackupSnapshotSizeFlag: evlogctl restore and backup --verify bound a
// snapshot's decompressed size by 64 MiB by default, which refused as
// damaged every backup of a log whose Options.Snapshot.MaxRawSize allows
// larger snapshots (restore had no way to raise it). --max-snapshot-size
// sets the bound for both (that each applies it, leaving the snapshot
// out: TestRestoreLeavesOutSnapshot, TestBackupVerifyAgreesWithRestoreOnSnapshots).
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
		// Over the bound: reported as a snapshot restore leaves out, not
		// as damage (TestBackupVerifyAgreesWithRestoreOnSnapshots).
		{[]string{"backup", "--verify", bdir, "--max-snapshot-size", "100"}, 0},
		{[]string{"backup", "--verify", bdir, "--max-snapshot-size", "2000"}, 0},
		// Over the bound: the events are restored, the snapshot left
		// out (TestRestoreLeavesOutSnapshot).
		{[]string{"restore", bdir, filepath.Join(dir, "r1"), "--max-snapshot-size", "100"}, 0},
		{[]string{"restore", bdir, filepath.Join(dir, "r2"), "--max-snapshot-size", "2000"}, 0},
		{[]string{"restore", bdir, filepath.Join(dir, "r3"), "--max-snapshot-size", "-1"}, 2},
		{[]string{"backup", src, filepath.Join(dir, "b2"), "--max-snapshot-size", "100"}, 2},
	} {
		if r := run1(t, tc.args...); r.code != tc.code {
			t.Errorf("evlogctl %q: exit %d, want %d (%v)", tc.args, r.code, tc.code, r.err)
		}
	}
}

// TestRestoreLeavesOutSnapshot: a snapshot over --max-snapshot-size made
// evlogctl restore refuse the whole backup (status 1), events and all. It
// restores the events and the other snapshots, leaves that one out
// (status 0) and says so: on stderr, in the text plan (its reason) and in
// the JSON plan (the file's "reason"), with --dry-run too.
func TestRestoreLeavesOutSnapshot(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src, bdir := filepath.Join(dir, "log"), filepath.Join(dir, "b")
	l, err := evlog.Open(src, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var last evlog.Position
	tm := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	for range 3 {
		if last, err = l.Append(ctx, "s", evlog.ExpectAny, evlog.Envelope{Type: "e", Time: tm, Data: []byte("\xa1x")}); err != nil {
			t.Fatal(err)
		}
	}
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	small, err := store.Save(ctx, snapshot.Meta{Name: "small", LogID: l.LogID(), Seq: 1, Time: tm}, make([]byte, 10))
	if err != nil {
		t.Fatal(err)
	}
	big, err := store.Save(ctx, snapshot.Meta{Name: "big", LogID: l.LogID(), Seq: last.Seq, Time: tm}, make([]byte, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "backup", src, bdir)

	r := run1(t, "restore", bdir, filepath.Join(dir, "dry"), "--max-snapshot-size", "100", "--dry-run", "--format", "json")
	if r.code != 0 {
		t.Fatalf("restore --dry-run --format json: exit %d (%v)", r.code, r.err)
	}
	var doc struct {
		EndSeq uint64 `json:"end_seq"`
		Files  []struct {
			Name, Action, Reason string
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if doc.EndSeq != last.Seq {
		t.Errorf("end_seq %d, want %d", doc.EndSeq, last.Seq)
	}
	for _, f := range doc.Files {
		switch f.Name {
		case small.File:
			if f.Action != "copy" || f.Reason != "" {
				t.Errorf("JSON plan: %+v, want the small snapshot copied", f)
			}
		case big.File:
			if f.Action != "leave out" || !strings.Contains(f.Reason, "over the snapshot size bound") {
				t.Errorf("JSON plan: %+v, want the big snapshot left out with its reason", f)
			}
		}
	}
	if !strings.Contains(r.stderr, big.File) {
		t.Errorf("stderr does not name the snapshot left out:\n%s", r.stderr)
	}

	r = run1(t, "restore", bdir, filepath.Join(dir, "r"), "--max-snapshot-size", "100")
	if r.code != 0 {
		t.Fatalf("restore: exit %d (%v)", r.code, r.err)
	}
	for _, out := range []string{r.stdout, r.stderr} {
		if !strings.Contains(out, big.File) || !strings.Contains(out, "over the snapshot size bound") {
			t.Errorf("the output does not say which snapshot was left out and why:\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "1 snapshot left out") {
		t.Errorf("the summary does not count the snapshot left out:\n%s", r.stdout)
	}
	if v := run1(t, "verify", filepath.Join(dir, "r")); v.code != 0 {
		t.Errorf("verify of the restored log: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}
}
