package evlogcli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/snapshot"
)

// relistBackupFile replaces the file name of the backup in bdir with data
// and rewrites the MANIFEST (docs/BACKUP.md: a first line with the SHA-256
// of the JSON after it) to list data's size and SHA-256: a backup that
// faithfully copied the file as data.
func relistBackupFile(t *testing.T, bdir, name string, data []byte) {
	t.Helper()
	p := filepath.Join(bdir, "MANIFEST")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		t.Fatalf("MANIFEST has no first line:\n%s", b)
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range m["files"].([]any) {
		if f := f.(map[string]any); f["name"] == name {
			sum := sha256.Sum256(data)
			f["size"], f["sha256"], f["trailer"] = len(data), hex.EncodeToString(sum[:]), hex.EncodeToString(data[len(data)-4:])
			found = true
		}
	}
	if !found {
		t.Fatalf("MANIFEST does not list %s", name)
	}
	if body, err = json.MarshalIndent(m, "", "  "); err != nil {
		t.Fatal(err)
	}
	body = append(body, '\n')
	sum := sha256.Sum256(body)
	fields := strings.Fields(string(head)) // "evlog-backup 1 sha256:…"
	head = fmt.Appendf(nil, "%s %s sha256:%s\n", fields[0], fields[1], hex.EncodeToString(sum[:]))
	if err := os.WriteFile(filepath.Join(bdir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append(head, body...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// corruptSnapshotBackup takes a backup (bdir) of a log of 3 events with
// snapshots at seqs 1 (good) and 3, whose copy it then corrupts, listing
// the corrupt bytes in the manifest: a backup of a snapshot that was
// already damaged when it was taken.
func corruptSnapshotBackup(t *testing.T, dir string) (bdir, good, bad string) {
	t.Helper()
	ctx := context.Background()
	src := filepath.Join(dir, "log")
	bdir = filepath.Join(dir, "b")
	l, err := evlog.Open(src, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tm := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	var last evlog.Position
	for range 3 {
		if last, err = l.Append(ctx, "s", evlog.ExpectAny, evlog.Envelope{Type: "e", Time: tm, Data: []byte("\xa1x")}); err != nil {
			t.Fatal(err)
		}
	}
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	g, err := store.Save(ctx, snapshot.Meta{Name: "good", LogID: l.LogID(), Seq: 1, Time: tm}, make([]byte, 10))
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.Save(ctx, snapshot.Meta{Name: "bad", LogID: l.LogID(), Seq: last.Seq, Time: tm}, make([]byte, 100))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "backup", src, bdir, "--copy")
	data, err := os.ReadFile(filepath.Join(bdir, b.File))
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-6] ^= 0x40 // in the payload, before the file checksum
	relistBackupFile(t, bdir, b.File, data)
	return bdir, g.File, b.File
}

// TestRestoreLeavesOutCorruptSnapshot: evlogctl restore refused (status 1)
// a backup holding a snapshot that was corrupt when the backup was taken
// (its bytes match the manifest): the events were unrestorable with the
// tool. It restores them and the good snapshot, leaves the corrupt one out
// and says so (stderr, the plan's reason, the summary), status 0.
func TestRestoreLeavesOutCorruptSnapshot(t *testing.T) {
	dir := t.TempDir()
	bdir, good, bad := corruptSnapshotBackup(t, dir)
	rdir := filepath.Join(dir, "r")
	r := run1(t, "restore", bdir, rdir)
	if r.code != 0 {
		t.Fatalf("restore: exit %d (%v)\n%s", r.code, r.err, r.stderr)
	}
	if !strings.Contains(r.stderr, "warning: snapshot "+bad) || !strings.Contains(r.stderr, "corrupt") {
		t.Errorf("stderr does not warn that %s was left out as corrupt:\n%s", bad, r.stderr)
	}
	if !strings.Contains(r.stdout, "left out "+bad+": corrupt") || !strings.Contains(r.stdout, "1 snapshot left out") {
		t.Errorf("the plan does not say that %s was left out, and why:\n%s", bad, r.stdout)
	}
	if _, err := os.Stat(filepath.Join(rdir, good)); err != nil {
		t.Errorf("the good snapshot was not restored: %v", err)
	}
	if _, err := os.Stat(filepath.Join(rdir, bad)); !os.IsNotExist(err) {
		t.Errorf("the corrupt snapshot was restored (%v)", err)
	}
	if v := run1(t, "verify", rdir); v.code != 0 {
		t.Errorf("verify of the restored log: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}
}

// TestBackupVerifyAgreesWithRestoreOnSnapshots: backup --verify reported a
// snapshot that restore leaves out (over --max-snapshot-size; corrupt when
// the backup was taken) as damage, status 1, while restore restored
// everything else with status 0: the operator was told the backup was bad.
// Verify now says what restore does: status 0, "ok": true, the snapshot
// in "snapshots_left_out" with restore's reason, a warning on stderr.
func TestBackupVerifyAgreesWithRestoreOnSnapshots(t *testing.T) {
	dir := t.TempDir()
	bdir, _, bad := corruptSnapshotBackup(t, dir)
	for _, tc := range []struct {
		name  string
		bound []string
		// the snapshots left out: the corrupt one, and with a bound below
		// every snapshot's size the good one too
		want int
	}{
		{"corrupt", nil, 1},
		{"corrupt and over the bound", []string{"--max-snapshot-size", "5"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := run1(t, append([]string{"backup", "--verify", bdir, "--format", "json"}, tc.bound...)...)
			if v.code != 0 {
				t.Fatalf("backup --verify: exit %d, want 0 (restore succeeds) (%v)\n%s", v.code, v.err, v.stdout)
			}
			var doc struct {
				OK        bool `json:"ok"`
				Snapshots int  `json:"snapshots"`
				LeftOut   []struct {
					Name   string `json:"name"`
					Seq    uint64 `json:"seq"`
					Reason string `json:"reason"`
				} `json:"snapshots_left_out"`
			}
			if err := json.Unmarshal([]byte(v.stdout), &doc); err != nil {
				t.Fatalf("%v:\n%s", err, v.stdout)
			}
			r := run1(t, append([]string{"restore", bdir, filepath.Join(dir, "dry"), "--dry-run", "--format", "json"}, tc.bound...)...)
			if r.code != 0 {
				t.Fatalf("restore --dry-run: exit %d (%v)", r.code, r.err)
			}
			var plan struct {
				Files []struct{ Name, Reason string } `json:"files"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil {
				t.Fatalf("%v:\n%s", err, r.stdout)
			}
			reasons := map[string]string{}
			for _, f := range plan.Files {
				if f.Reason != "" {
					reasons[f.Name] = f.Reason
				}
			}
			if !doc.OK || len(doc.LeftOut) != tc.want || len(reasons) != tc.want || doc.Snapshots != 2-tc.want {
				t.Errorf("verify: %+v; restore left out %v; want ok, %d left out by both", doc, reasons, tc.want)
			}
			for _, f := range doc.LeftOut {
				if f.Reason == "" || f.Reason != reasons[f.Name] {
					t.Errorf("verify: %s left out because %q; restore: because %q", f.Name, f.Reason, reasons[f.Name])
				}
				if !strings.Contains(v.stderr, "warning: snapshot "+f.Name) {
					t.Errorf("verify: no warning on stderr for %s:\n%s", f.Name, v.stderr)
				}
			}
			if _, ok := reasons[bad]; !ok {
				t.Errorf("restore did not leave out the corrupt %s: %v", bad, reasons)
			}
			text := run1(t, append([]string{"backup", "--verify", bdir}, tc.bound...)...)
			if text.code != 0 || !strings.Contains(text.stdout, "left out "+bad+": "+reasons[bad]) || !strings.Contains(text.stdout, "ok backup") {
				t.Errorf("backup --verify (text): exit %d\nstdout:\n%s\nstderr:\n%s", text.code, text.stdout, text.stderr)
			}
		})
	}
}
