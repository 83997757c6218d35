package evlogcli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/snapshot"
)

// TestSnapshotsPruneFoldByFold: snapshots --prune judges the snapshots of
// a subject fold by fold (log ID, schema version, scope), as the
// projection runner prunes its checkpoints: the snapshots of another fold
// cannot replace each other, so --keep 1 keeps the newest of each. It
// counted every fold of a subject together and removed the only
// checkpoint an older fold (a projection not yet redeployed, another
// scope) could resume from.
func TestSnapshotsPruneFoldByFold(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	l, err := evlog.Open(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, err := l.Append(ctx, "s", evlog.ExpectAny, event.Envelope{Type: "e", Time: testEventTime(i)}); err != nil {
			t.Fatal(err)
		}
	}
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	const name = "projection/p"
	other := [16]byte{0xee}
	for _, m := range []snapshot.Meta{
		{Seq: 1, SchemaVersion: 1},               // fold A
		{Seq: 2, SchemaVersion: 1},               // fold A: its newest
		{Seq: 3, SchemaVersion: 1, Scope: 0x5c},  // fold B: its only one
		{Seq: 4, SchemaVersion: 2},               // fold C
		{Seq: 5, SchemaVersion: 1, LogID: other}, // fold D: another log's
		{Seq: 6, SchemaVersion: 2},               // fold C: its newest, the subject's newest
	} {
		m.Name, m.Time = name, testEventTime(int(m.Seq)-1)
		if m.LogID == ([16]byte{}) {
			m.LogID = l.LogID()
		}
		if _, err := store.Save(ctx, m, []byte{0x80}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, err := runCLI(t, nil, "snapshots", dir, "--prune", "--keep", "1", "--format", "json")
	if err != nil {
		t.Fatalf("snapshots --prune --keep 1: %v\n%s%s", err, stdout, stderr)
	}
	var got snapshotsResult
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	seqs := func(rs []snapshotListJSON) []uint64 {
		var out []uint64
		for _, r := range rs {
			out = append(out, r.Seq)
		}
		return out
	}
	type result struct{ Left, Removed []uint64 }
	want := result{Left: []uint64{2, 3, 5, 6}, Removed: []uint64{1, 4}}
	if diff := cmp.Diff(want, result{seqs(got.Snapshots), seqs(got.Removed)}); diff != "" {
		t.Errorf("snapshots --prune --keep 1, seqs (-want +got):\n%s\n%s", diff, stdout)
	}
	if stderr != "" {
		t.Errorf("stderr: %s", stderr)
	}

	// Fold C's newest (seq 6) damaged: fold C keeps nothing on its word
	// (seq 4 is gone already; seq 2 of fold A is not its to replace).
	l, err = evlog.Open(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err = l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	m := snapshot.Meta{Name: name, LogID: l.LogID(), Seq: 1, Time: testEventTime(0), SchemaVersion: 2}
	if _, err := store.Save(ctx, m, []byte{0x80}); err != nil { // fold C again, at seq 1
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	newest := filepath.Join(dir, got.Snapshots[len(got.Snapshots)-1].File)
	b, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-10] ^= 0xff
	if err := os.WriteFile(newest, b, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err = runCLI(t, nil, "snapshots", dir, "--prune", "--keep", "1", "--format", "json")
	if err != nil {
		t.Fatalf("snapshots --prune --keep 1 with a damaged snapshot: %v\n%s%s", err, stdout, stderr)
	}
	got = snapshotsResult{}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	want = result{Left: []uint64{1, 2, 3, 5, 6}}
	if diff := cmp.Diff(want, result{seqs(got.Snapshots), seqs(got.Removed)}); diff != "" {
		t.Errorf("snapshots --prune --keep 1 with fold C's newest damaged, seqs (-want +got):\n%s\n%s", diff, stdout)
	}
	wantErr := fmt.Sprintf("warning: snapshot %s (seq 1) not pruned: a newer snapshot kept in its place fails to verify (run evlogctl verify)\n", snapshot.FormatFileName(name, 1))
	if stderr != wantErr {
		t.Errorf("stderr: %q, want %q", stderr, wantErr)
	}
}
