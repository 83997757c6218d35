package evlog

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/snapshot"
)

// snapshotBackup is a backup in memory of a log of 10 events with two
// snapshots, "keep" at seq 3 and "all" at seq 5 (a 1000-byte state).
type snapshotBackup struct {
	src  *Log
	b    vfs.FS // the backup, under the name "backup"
	keep string // the snapshot files
	all  string
}

func newSnapshotBackup(t *testing.T) snapshotBackup {
	t.Helper()
	ctx := t.Context()
	src := openMem(t, vfs.NewMem(), Options{})
	t.Cleanup(func() { src.Close() })
	appendN(t, src, "s", 10)
	store, err := src.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	save := func(name string, seq uint64, size int) string {
		t.Helper()
		tm, err := src.eventTime(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		m, err := store.Save(ctx, snapshot.Meta{Name: name, LogID: src.LogID(), Seq: seq, Time: tm}, make([]byte, size))
		if err != nil {
			t.Fatal(err)
		}
		return m.File
	}
	sb := snapshotBackup{src: src, b: vfs.NewMem(), keep: save("keep", 3, 10), all: save("all", 5, 1000)}
	if _, err := src.backupFS(ctx, sb.b, "backup", BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	return sb
}

// relist replaces the backup's file name with data and rewrites the
// manifest to list data's size and SHA-256: a backup that faithfully
// copied the file as data.
func (sb snapshotBackup) relist(t *testing.T, name string, data []byte) {
	t.Helper()
	m, err := readManifest(sb.b, "backup")
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Files {
		if f := &m.Files[i]; f.Name == name {
			sum := sha256.Sum256(data)
			f.Size, f.SHA256, f.Trailer = int64(len(data)), hex.EncodeToString(sum[:]), hex.EncodeToString(data[len(data)-4:])
		}
	}
	if err := sb.b.(*vfs.Mem).WriteFile(name, data); err != nil {
		t.Fatal(err)
	}
	if err := writeManifest(sb.b, m); err != nil {
		t.Fatal(err)
	}
}

// flipped returns the backup's file name with one byte of its middle
// flipped.
func (sb snapshotBackup) flipped(t *testing.T, name string) []byte {
	t.Helper()
	b, err := sb.b.(*vfs.Mem).ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	b = append([]byte(nil), b...)
	b[len(b)/2] ^= 0x40
	return b
}

// restore restores the backup into a new in-memory directory.
func (sb snapshotBackup) restore(t *testing.T, opts RestoreOptions) (RestorePlan, *vfs.Mem, error) {
	t.Helper()
	dst := vfs.NewMem()
	var plan RestorePlan
	_, err := restoreFS(t.Context(), sb.b, "backup", func() (vfs.FS, error) { return dst, nil }, "r", opts, &plan)
	return plan, dst, err
}

// TestRestoreLeavesOutCorruptSnapshotMatchingManifest: a backup that
// faithfully copied a snapshot already corrupt in the log (its bytes are
// the ones the manifest lists) was refused whole by Restore
// (ErrBackupCorrupt), events and all: the events were unrestorable with
// the tool. Snapshots are derived: the restore restores the events and the
// other snapshots, leaves that one out and says why, as it does for a
// snapshot over the size bound.
func TestRestoreLeavesOutCorruptSnapshotMatchingManifest(t *testing.T) {
	sb := newSnapshotBackup(t)
	sb.relist(t, sb.all, sb.flipped(t, sb.all))
	want := readAll(t, sb.src)
	for _, dry := range []bool{true, false} {
		plan, dst, err := sb.restore(t, RestoreOptions{DryRun: dry})
		if err != nil {
			t.Fatalf("dry run %v: Restore: %v; want the events and the intact snapshot restored, the corrupt one left out", dry, err)
		}
		left := plan.SnapshotsLeftOut()
		if len(left) != 1 || left[0].Name != sb.all || left[0].Action != actionLeave || left[0].Reason == "" {
			t.Fatalf("dry run %v: SnapshotsLeftOut = %+v, want %s left out with a reason", dry, left, sb.all)
		}
		if dry {
			continue
		}
		r := openMem(t, dst, Options{})
		defer r.Close()
		if d := cmp.Diff(want, readAll(t, r), envCmp...); d != "" {
			t.Errorf("restored events (-source +restored):\n%s", d)
		}
		rs, err := r.Snapshots()
		if err != nil {
			t.Fatal(err)
		}
		got, err := rs.VerifyAll(t.Context())
		if err != nil {
			t.Fatalf("the restored log's snapshots: %v", err)
		}
		if len(got) != 1 || got[0].File != sb.keep {
			t.Errorf("restored snapshots %+v, want only %s", got, sb.keep)
		}
	}
}

// TestVerifyBackupAgreesWithRestoreOnSnapshots: VerifyBackup reported a
// snapshot over the size bound as damage (ErrBackupCorrupt, evlogctl
// backup --verify status 1) while Restore left it out and restored
// everything else: the operator was told the backup was bad although its
// restore succeeds. Both now judge a snapshot alike (checkBackupSnapshot);
// for each condition of the snapshot at seq 5, VerifyBackup's outcome is
// Restore's: the same snapshots left out with the same reasons, or the
// same damage refusing both.
func TestVerifyBackupAgreesWithRestoreOnSnapshots(t *testing.T) {
	ctx := t.Context()
	other := openMem(t, vfs.NewMem(), Options{})
	defer other.Close()
	appendN(t, other, "s", 10)
	store, err := other.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := other.eventTime(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	// Another log's snapshot of subject "all" at seq 5: under the name of
	// the backup's own.
	foreign, err := store.Save(ctx, snapshot.Meta{Name: "all", LogID: other.LogID(), Seq: 5, Time: tm}, []byte("another log's"))
	if err != nil {
		t.Fatal(err)
	}
	foreignBytes, err := memOf(other.fs).ReadFile(foreign.File)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		max     int64 // the snapshot size bound of both
		corrupt func(t *testing.T, sb snapshotBackup)
		// leftOut: the snapshot at seq 5 is left out; damaged: the
		// backup is refused as damaged, naming it.
		leftOut, damaged bool
	}{
		{name: "intact", corrupt: func(*testing.T, snapshotBackup) {}},
		{name: "over the size bound", max: 500, corrupt: func(*testing.T, snapshotBackup) {}, leftOut: true},
		{name: "corrupt, matching the manifest", corrupt: func(t *testing.T, sb snapshotBackup) {
			sb.relist(t, sb.all, sb.flipped(t, sb.all))
		}, leftOut: true},
		{name: "another log's, matching the manifest", corrupt: func(t *testing.T, sb snapshotBackup) {
			sb.relist(t, sb.all, foreignBytes)
		}, leftOut: true},
		{name: "bytes not matching the manifest", corrupt: func(t *testing.T, sb snapshotBackup) {
			if err := sb.b.(*vfs.Mem).WriteFile(sb.all, sb.flipped(t, sb.all)); err != nil {
				t.Fatal(err)
			}
		}, damaged: true},
		{name: "missing", corrupt: func(t *testing.T, sb snapshotBackup) {
			if err := sb.b.Remove(sb.all); err != nil {
				t.Fatal(err)
			}
		}, damaged: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb := newSnapshotBackup(t)
			tc.corrupt(t, sb)
			rep, verr := verifyBackupFS(ctx, vfs.ReadOnly(sb.b), "backup", VerifyBackupOptions{MaxSnapshotSize: tc.max})
			plan, dst, rerr := sb.restore(t, RestoreOptions{MaxSnapshotSize: tc.max})
			if tc.damaged {
				for what, err := range map[string]error{"VerifyBackup": verr, "Restore": rerr} {
					if be, ok := errors.AsType[*BackupError](err); !ok || !errors.Is(err, ErrBackupCorrupt) || be.File != sb.all {
						t.Errorf("%s: %v, want a *BackupError on %s matching ErrBackupCorrupt", what, err, sb.all)
					}
				}
				if names, _ := dst.List(); len(names) > 0 {
					t.Errorf("the refused restore wrote %q", names)
				}
				return
			}
			if verr != nil || rerr != nil {
				t.Fatalf("VerifyBackup: %v; Restore: %v; want both to succeed", verr, rerr)
			}
			if d := cmp.Diff(plan.SnapshotsLeftOut(), rep.SnapshotsLeftOut, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("snapshots left out (-Restore +VerifyBackup):\n%s", d)
			}
			var want []string
			if tc.leftOut {
				want = []string{sb.all}
			}
			var got []string
			for _, f := range plan.SnapshotsLeftOut() {
				got = append(got, f.Name)
				if f.Reason == "" || f.Action != actionLeave {
					t.Errorf("left out without a reason: %+v", f)
				}
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("snapshots left out (-want +got):\n%s", d)
			}
			if kept := 2 - len(want); rep.Snapshots != kept {
				t.Errorf("VerifyBackup verified %d snapshots, want %d (those a restore keeps)", rep.Snapshots, kept)
			}
			r := openMem(t, dst, Options{})
			defer r.Close()
			if d := cmp.Diff(readAll(t, sb.src), readAll(t, r), envCmp...); d != "" {
				t.Errorf("restored events (-source +restored):\n%s", d)
			}
		})
	}
}

// swapOnOpen is the backup's file system, on which the second Open of
// name first runs swap: a pass of a backup beside the reader replacing
// the file (and the manifest) between the reader's check of the file's
// SHA-256 and its reading of the snapshot.
type swapOnOpen struct {
	vfs.FS
	name  string
	opens int
	swap  func()
}

func (s *swapOnOpen) Open(name string) (vfs.File, error) {
	if name == s.name {
		if s.opens++; s.opens == 2 {
			s.swap()
		}
	}
	return s.FS.Open(name)
}

// TestSnapshotReplacedBesideIsNotLeftOut: a pass of a backup beside a
// restore or a verification may replace a snapshot under its name (one
// removed from the log and saved again at the same seq) and the manifest,
// between the reader's check of the file against the manifest it read and
// its reading of the snapshot. Read through the old manifest's size, the
// new file does not verify: it was left out as "corrupt … its bytes are
// the ones the manifest lists", which is false, where a failure is read
// again under the new manifest. A snapshot found unusable while the
// manifest changed is read again too.
func TestSnapshotReplacedBesideIsNotLeftOut(t *testing.T) {
	ctx := t.Context()
	sb := newSnapshotBackup(t)
	whats := []string{"VerifyBackup", "Restore"}
	backups := map[string]vfs.FS{} // taken before the snapshot is saved again
	for _, what := range whats {
		backups[what] = vfs.NewMem()
		if _, err := sb.src.backupFS(ctx, backups[what], "backup", BackupOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	store, err := sb.src.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	ms, err := store.List("all")
	if err != nil || len(ms) != 1 {
		t.Fatalf("List: %v, %v", ms, err)
	}
	if err := store.Remove(ctx, ms[0]); err != nil {
		t.Fatal(err)
	}
	state := make([]byte, 4000)
	for i := range state {
		state[i] = byte(i * 7)
	}
	m := ms[0]
	m.File = ""
	if _, err := store.Save(ctx, m, state); err != nil {
		t.Fatal(err)
	}
	resaved, err := memOf(sb.src.fs).ReadFile(sb.all)
	if err != nil {
		t.Fatal(err)
	}

	for _, what := range whats {
		t.Run(what, func(t *testing.T) {
			sb := sb
			sb.b = backups[what]
			fsys := &swapOnOpen{FS: sb.b, name: sb.all, swap: func() { sb.relist(t, sb.all, resaved) }}
			var left []RestoreFile
			switch what {
			case "VerifyBackup":
				rep, err := besidePass(fsys, func() (BackupReport, error) {
					return verifyBackupFS(ctx, vfs.ReadOnly(fsys), "backup", VerifyBackupOptions{})
				})
				if err != nil {
					t.Fatal(err)
				}
				left = rep.SnapshotsLeftOut
			case "Restore":
				dst := vfs.NewMem()
				var plan RestorePlan
				if _, err := restoreFS(ctx, fsys, "backup", func() (vfs.FS, error) { return dst, nil }, "r", RestoreOptions{}, &plan); err != nil {
					t.Fatal(err)
				}
				left = plan.SnapshotsLeftOut()
				got, err := dst.ReadFile(sb.all)
				if err != nil || len(got) != len(resaved) {
					t.Errorf("restored %s: %d bytes (%v), want the %d of the snapshot saved again", sb.all, len(got), err, len(resaved))
				}
			}
			if fsys.opens < 2 {
				t.Fatalf("%s opened %s %d times: the swap never ran", what, sb.all, fsys.opens)
			}
			if len(left) > 0 {
				t.Errorf("%s left out %+v, want the snapshot saved again read under the new manifest", what, left)
			}
		})
	}
}
