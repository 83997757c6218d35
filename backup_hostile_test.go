package evlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

// TestIncrementalRefusesALogThatLostEvents: a read-only backup beside a
// SyncNever writer holds committed batches that a power loss of the source
// may take (docs/BACKUP.md). When it does, and the restarted writer
// appends other events at those seqs, the log no longer continues the
// backup: an incremental pass must refuse it (ErrBackupDiverged) and leave
// the backup as it was — the only copy of those events — not replace it
// with the shorter, different log.
func TestIncrementalRefusesALogThatLostEvents(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		again  int  // events appended after the loss
		noCopy bool // the backup's copy of the newest segment removed too
	}{{1, false}, {5, false}, {9, false}, {9, true}} {
		again := tc.again
		mem := vfs.NewMem()
		w := openMem(t, mem, Options{Sync: SyncNever})
		appendN(t, w, "a", 6)
		ro, err := openFS(vfs.ReadOnly(mem), Options{}, true)
		if err != nil {
			t.Fatal(err)
		}
		b := vfs.NewMem()
		res, err := ro.backupFS(ctx, b, "backup", BackupOptions{})
		ro.Close()
		if err != nil || res.Seq != 6 {
			t.Fatalf("backup: seq %d, %v; want 6", res.Seq, err)
		}
		if tc.noCopy {
			// The divergence is found from the manifest's checksum, not by
			// reading the backup's copy.
			names, _ := b.List()
			for _, n := range names {
				if strings.HasSuffix(n, segment.Ext) {
					b.Remove(n)
				}
			}
		}
		before := snapshotFiles(t, b)

		lost := mem.CrashClone(vfs.DropUnsynced, nil) // the writer's batches were never fsynced
		w2 := openMem(t, lost, Options{Sync: SyncNever})
		appendN(t, w2, "other", again)
		if err := w2.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		res, err = w2.backupFS(ctx, b, "backup", BackupOptions{Incremental: true})
		w2.Close()
		if !errors.Is(err, ErrBackupDiverged) {
			t.Errorf("%+v: incremental pass over a log that lost the backup's events: seq %d, %v; want ErrBackupDiverged", tc, res.Seq, err)
		}
		if d := cmp.Diff(before, snapshotFiles(t, b)); d != "" {
			t.Errorf("%+v: the backup changed:\n%s", tc, d)
		}
	}
}

// TestRestoreRefusesADirectoryInUse: Restore checks that its target is
// empty, then reads and checks the whole backup (minutes, for a large
// one) before it writes. A writer that opens the directory meanwhile, or
// a second restore into it, must make the restore fail, never have its
// files removed and overwritten: the restore takes the directory's LOCK
// and checks it again under it.
func TestRestoreRefusesADirectoryInUse(t *testing.T) {
	cs := newCrashSource(t)
	restore := memRestore(t, cs)
	dst := vfs.NewMem()
	w := openMem(t, dst, Options{})
	defer w.Close()
	appendN(t, w, "mine", 5)
	want := readAll(t, w)
	before := snapshotFiles(t, dst)
	err := restore(dst)
	if err == nil {
		t.Error("a restore into a directory a writer holds succeeded")
	}
	delete(before, LockFile)
	after := snapshotFiles(t, dst)
	delete(after, LockFile)
	if d := cmp.Diff(before, after); d != "" {
		t.Errorf("the restore (%v) changed the writer's directory:\n%s", err, d)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := openFS(vfs.ReadOnly(dst), Options{}, true)
	if err != nil {
		t.Fatalf("reopening the writer's log: %v", err)
	}
	defer r.Close()
	if d := cmp.Diff(want, readAll(t, r), envCmp...); d != "" {
		t.Errorf("the writer's log changed (-before +after):\n%s", d)
	}
}

// TestRestoreChecksSnapshotsAsVerifyDoes: a restore relabels every
// snapshot it keeps with the restored log's new ID, which erases what
// would show that a snapshot does not belong there. A backup listing,
// with checksums that match, another log's snapshot, or a later snapshot
// under an earlier one's name (kept by a point-in-time restore that ends
// before its seq), must not be adopted by Restore: the state of another
// log or of events the restored log does not have. Both refused the whole
// backup; snapshots are derived, so Restore now leaves that one out, says
// why, and restores the events, and VerifyBackup reports it as one a
// restore leaves out (checkBackupSnapshot,
// TestVerifyBackupAgreesWithRestoreOnSnapshots).
func TestRestoreChecksSnapshotsAsVerifyDoes(t *testing.T) {
	ctx := t.Context()
	save := func(l *Log, seq uint64, state string) []byte {
		t.Helper()
		store, err := l.Snapshots()
		if err != nil {
			t.Fatal(err)
		}
		tm, err := l.eventTime(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		m, err := store.Save(ctx, snapshot.Meta{Name: "all", LogID: l.LogID(), Seq: seq, Time: tm, SchemaVersion: 1}, []byte(state))
		if err != nil {
			t.Fatal(err)
		}
		b, err := memOf(l.fs).ReadFile(m.File)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	srcMem := vfs.NewMem()
	src := openMem(t, srcMem, Options{})
	defer src.Close()
	appendN(t, src, "s", 10)
	save(src, 5, "mine at 5")
	later := save(src, 9, "mine at 9")
	other := openMem(t, vfs.NewMem(), Options{})
	defer other.Close()
	appendN(t, other, "s", 10)
	foreign := save(other, 5, "another log's")
	name5 := snapshot.FormatFileName("all", 5)

	for _, tc := range []struct {
		name string
		data []byte
		opts RestoreOptions
	}{
		{"another log's snapshot", foreign, RestoreOptions{}},
		{"a later snapshot under an earlier name", later, RestoreOptions{ToSeq: 6}},
	} {
		b := vfs.NewMem()
		if _, err := src.backupFS(ctx, b, "backup", BackupOptions{}); err != nil {
			t.Fatal(err)
		}
		m, err := readManifest(b, "backup")
		if err != nil {
			t.Fatal(err)
		}
		for i := range m.Files {
			if f := &m.Files[i]; f.Name == name5 {
				sum := sha256.Sum256(tc.data)
				f.Size, f.SHA256, f.Trailer = int64(len(tc.data)), hex.EncodeToString(sum[:]), hex.EncodeToString(tc.data[len(tc.data)-4:])
			}
		}
		if err := b.WriteFile(name5, tc.data); err != nil {
			t.Fatal(err)
		}
		if err := writeManifest(b, m); err != nil {
			t.Fatal(err)
		}
		rep, err := verifyBackupFS(ctx, vfs.ReadOnly(b), "backup", VerifyBackupOptions{})
		if err != nil {
			t.Fatalf("%s: VerifyBackup: %v, want the snapshot reported as one a restore leaves out", tc.name, err)
		}
		if left := rep.SnapshotsLeftOut; len(left) != 1 || left[0].Name != name5 || left[0].Reason == "" {
			t.Errorf("%s: VerifyBackup: SnapshotsLeftOut = %+v, want %s with a reason", tc.name, left, name5)
		}
		dst := vfs.NewMem()
		var plan RestorePlan
		_, err = restoreFS(ctx, b, "backup", func() (vfs.FS, error) { return dst, nil }, "r", tc.opts, &plan)
		if err != nil {
			t.Fatalf("%s: restore: %v, want the events restored and the snapshot left out", tc.name, err)
		}
		if left := plan.SnapshotsLeftOut(); len(left) != 1 || left[0].Name != name5 || left[0].Reason == "" {
			t.Errorf("%s: SnapshotsLeftOut = %+v, want %s left out with a reason", tc.name, left, name5)
		}
		if _, err := dst.Lstat(name5); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: the restore adopted %s (%v)", tc.name, name5, err)
		}
	}
}

// TestVerifyBackupAgreesWithRestoreOnSnapshotSize: VerifyBackup bounds a
// snapshot's decompressed size as Restore does, by default and when
// raised. It bounded it by snapshot.MaxRawSizeLimit (16 GiB): a backup of
// a log whose snapshots exceed the default (its Options.Snapshot.MaxRawSize
// raised) verified, and Restore with defaults found it over the bound;
// and a hostile backup could make it decompress 16 GiB. Over the bound,
// Restore restores the events and leaves that snapshot out, saying so
// (TestRestoreLeavesOutSnapshotOverTheBound), and VerifyBackup, which
// reported it as damage, reports the same (SnapshotsLeftOut).
func TestVerifyBackupAgreesWithRestoreOnSnapshotSize(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	src := filepath.Join(dir, "log")
	big := int64(snapshot.DefaultMaxRawSize + 1)
	l, err := Open(src, Options{Snapshot: snapshot.Options{MaxRawSize: 2 * big}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, "s", 3)
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := l.eventTime(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Save(ctx, snapshot.Meta{Name: "all", LogID: l.LogID(), Seq: 3, Time: tm}, make([]byte, big)); err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(dir, "backup")
	if _, err := l.Backup(ctx, bdir, BackupOptions{NoLink: true}); err != nil {
		t.Fatal(err)
	}
	for _, max := range []int64{0, 2 * big} {
		rep, verr := VerifyBackupWith(ctx, bdir, VerifyBackupOptions{MaxSnapshotSize: max})
		plan, rerr := Restore(ctx, bdir, filepath.Join(dir, fmt.Sprintf("r%d", max)), RestoreOptions{MaxSnapshotSize: max})
		if rerr != nil {
			t.Errorf("max %d: Restore: %v", max, rerr)
		}
		if verr != nil {
			t.Errorf("max %d: VerifyBackup: %v", max, verr)
		}
		if over := len(plan.SnapshotsLeftOut()) > 0; over != (max == 0) {
			t.Errorf("max %d: Restore left out %+v", max, plan.SnapshotsLeftOut())
		}
		if d := cmp.Diff(plan.SnapshotsLeftOut(), rep.SnapshotsLeftOut, cmpopts.EquateEmpty()); d != "" {
			t.Errorf("max %d: snapshots left out (-Restore +VerifyBackup):\n%s", max, d)
		}
	}
}

// TestRestoredLogRefusesCopiedSubscriptions: docs/BACKUP.md said a .sub
// file copied by hand into a restored directory keeps its position ("they
// carry the log ID, which a restore keeps"); a restore gives the log a new
// ID, so the copy is refused as another log's (ErrCorrupt, "remove it"),
// which is what the document says now.
func TestRestoredLogRefusesCopiedSubscriptions(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	l, err := Open(filepath.Join(dir, "log"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, "s", 4)
	sub, err := l.Subscription("orders", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Ack(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Backup(ctx, filepath.Join(dir, "b"), BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, filepath.Join(dir, "b"), filepath.Join(dir, "r"), RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "log", "orders"+SubscriptionExt))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "r", "orders"+SubscriptionExt), b, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(filepath.Join(dir, "r"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Subscription("orders", Filter{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a subscription copied into the restored log: %v, want it refused as another log's (ErrCorrupt)", err)
	}
}

// TestIncrementalReplacesAMissingFile: an incremental pass keeps the files
// of the previous backup it already holds without reading them; one that
// is no longer there (removed, truncated, replaced by a symbolic link) must
// be copied again, not listed in a new manifest that claims it: each pass
// of FollowBackup would report success over a backup that does not restore.
func TestIncrementalReplacesAMissingFile(t *testing.T) {
	ctx := t.Context()
	l, _, _ := backupLog(t, 60, Options{})
	saveSnapshots(t, l, 20)
	for _, damage := range []string{"removed", "truncated", "symlink"} {
		for _, kind := range []string{kindSegment, kindSnapshot} {
			bdir := filepath.Join(t.TempDir(), "b")
			if _, err := l.Backup(ctx, bdir, BackupOptions{NoLink: true}); err != nil {
				t.Fatal(err)
			}
			var name string
			for _, f := range readManifestT(t, bdir).Files {
				if f.Kind == kind && (f.Sealed || kind == kindSnapshot) {
					name = f.Name
					break
				}
			}
			if name == "" {
				t.Fatalf("no %s in the backup", kind)
			}
			path := filepath.Join(bdir, name)
			var err error
			switch damage {
			case "removed":
				err = os.Remove(path)
			case "truncated":
				err = os.Truncate(path, 10)
			case "symlink":
				if err = os.Rename(path, path+".away"); err == nil {
					err = os.Symlink(name+".away", path)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Backup(ctx, bdir, BackupOptions{Incremental: true, NoLink: true}); err != nil {
				t.Fatalf("%s %s: incremental pass: %v", damage, kind, err)
			}
			if _, err := VerifyBackup(ctx, bdir); err != nil {
				t.Errorf("%s %s %s: after an incremental pass, the backup does not verify: %v", damage, kind, name, err)
			}
		}
	}
}

// TestIncrementalReplacesAResavedSnapshot: a snapshot removed from the log
// and saved again at the same seq (a projection rebuilt after a fix) has
// the same name and other bytes. A snapshot is never appended to: the
// pass must copy the new one, not take the log for another one
// (ErrBackupDiverged, which ends FollowBackup).
func TestIncrementalReplacesAResavedSnapshot(t *testing.T) {
	ctx := t.Context()
	l, _, _ := backupLog(t, 30, Options{})
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := l.eventTime(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	meta := snapshot.Meta{Name: "all", LogID: l.LogID(), Seq: 10, Time: tm, SchemaVersion: 1}
	if _, err := store.Save(ctx, meta, []byte("v1")); err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(t.TempDir(), "b")
	if _, err := l.Backup(ctx, bdir, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := store.Remove(ctx, meta); err != nil {
		t.Fatal(err)
	}
	meta.SchemaVersion = 2
	if _, err := store.Save(ctx, meta, []byte("version two of the state, longer")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Backup(ctx, bdir, BackupOptions{Incremental: true}); err != nil {
		t.Fatalf("incremental pass after a snapshot was saved again: %v", err)
	}
	if _, err := VerifyBackup(ctx, bdir); err != nil {
		t.Fatal(err)
	}
	view, err := vfs.OpenOS(bdir)
	if err != nil {
		t.Fatal(err)
	}
	defer view.Close()
	bs, err := snapshot.Open(vfs.ReadOnly(view), snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := bs.Verify(ctx, snapshot.FormatFileName("all", 10)); err != nil || got.SchemaVersion != 2 {
		t.Fatalf("the backup's snapshot: %+v, %v; want the one saved again (schema version 2)", got, err)
	}
}

// TestRestoreToBeforeADeletion: the point-in-time restore that undoes a
// mistaken deletion ends where the deleted stream's events are the last:
// the restore reads the time of its end event, which the backup's deletion
// marker (after that end) hides from its readers. It failed with "no event
// at seq N"; it must restore the events the deletion hid.
func TestRestoreToBeforeADeletion(t *testing.T) {
	ctx := t.Context()
	l, _, _ := backupLog(t, 0, Options{})
	appendN(t, l, "y", 1)
	appendN(t, l, "x", 3)
	if _, _, err := l.DeleteStream(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	all := readAllIncludingGone(t, l)
	bdir := filepath.Join(t.TempDir(), "b")
	if _, err := l.Backup(ctx, bdir, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []RestoreOptions{{ToSeq: 4}, {ToTime: all[3].Time}} {
		rdir := filepath.Join(t.TempDir(), "r")
		plan, err := Restore(ctx, bdir, rdir, opts)
		if err != nil {
			t.Errorf("restore %+v: %v", opts, err)
			continue
		}
		if plan.EndSeq != 4 || !plan.EndTime.Equal(all[3].Time) {
			t.Errorf("restore %+v: ends at seq %d (%v), want 4 (%v)", opts, plan.EndSeq, plan.EndTime, all[3].Time)
		}
		if got := logEvents(t, rdir); !envsEqual(got, all[:4]) {
			t.Errorf("restore %+v: the restored log holds %d events, want the 4 before the deletion", opts, len(got))
		}
	}
}

// readAllIncludingGone returns every event of l, those that read as gone
// included.
func readAllIncludingGone(t *testing.T, l *Log) []Envelope {
	t.Helper()
	var out []Envelope
	err := l.inView(t.Context(), func(v *view, pub published) error {
		return l.scanAllIn(t.Context(), v, pub, 1, 0, func(e *Envelope) error {
			c := *e
			c.Data = append([]byte(nil), e.Data...)
			c.Meta = maps.Clone(e.Meta)
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRestoreRefusesADamagedFrameBeforeWriting: a backup copies sealed
// segments as they are on disk, so one damaged in the log before the
// backup is in it with matching checksums. The restore finds the damage
// only when it checks every frame: a dry run (which copies nothing) said it
// would restore, and a restore failed midway leaving the target holding
// segments and its marker. A dry run must refuse it, and a restore must
// leave the target as it found it (nothing but the LOCK it took).
func TestRestoreRefusesADamagedFrameBeforeWriting(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{SegmentSize: MinSegmentSize})
	if err := runWorkload(ctx, l, genWorkload(3, 60)); err != nil {
		t.Fatal(err)
	}
	segs, err := l.Segments()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(segs) < 3 || !segs[1].Sealed {
		t.Fatalf("want at least 3 segments, the second sealed: %+v", segs)
	}
	// Damage a record in the middle of the second (sealed) segment.
	data, err := mem.ReadFile(segs[1].File)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := mem.WriteFile(segs[1].File, data); err != nil {
		t.Fatal(err)
	}
	ro, err := openFS(vfs.ReadOnly(mem), Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	b := vfs.NewMem()
	if _, err := ro.backupFS(ctx, b, "backup", BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	var plan RestorePlan
	if _, err := restoreFS(ctx, b, "backup", nil, "r", RestoreOptions{DryRun: true}, &plan); !errors.Is(err, ErrBackupCorrupt) {
		t.Errorf("dry run: %v, want ErrBackupCorrupt", err)
	}
	dst := vfs.NewMem()
	plan = RestorePlan{}
	if _, err := restoreFS(ctx, b, "backup", func() (vfs.FS, error) { return dst, nil }, "r", RestoreOptions{}, &plan); !errors.Is(err, ErrBackupCorrupt) {
		t.Errorf("restore: %v, want ErrBackupCorrupt", err)
	}
	names, err := dst.List()
	if err != nil {
		t.Fatal(err)
	}
	if names = slices.DeleteFunc(names, func(n string) bool { return n == LockFile }); len(names) > 0 {
		t.Errorf("the refused restore left %q in the target", names)
	}
}

// TestIncrementalToleratesALostMark: the backup's copy of the newest
// segment may end with a mark frame that the log no longer has (the writer
// wrote it whole, its write still failed, and it was cut): the log lost
// no event, the backup's copy starts with what the log holds, and the
// pass copies the segment anew rather than refusing the log as diverged.
func TestIncrementalToleratesALostMark(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	w := openMem(t, mem, Options{})
	defer w.Close()
	appendN(t, w, "a", 4)
	b := vfs.NewMem()
	if _, err := w.backupFS(ctx, b, "backup", BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	// The backup's copy ends with a mark-sized tail the log does not have.
	m, err := readManifest(b, "backup")
	if err != nil {
		t.Fatal(err)
	}
	last := &m.Files[len(m.segments())-1]
	data, err := b.ReadFile(last.Name)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data[:last.Size:last.Size], make([]byte, segment.MarkFrameSize)...)
	sum := sha256.Sum256(data)
	last.Size, last.SHA256 = int64(len(data)), hex.EncodeToString(sum[:])
	if err := b.WriteFile(last.Name, data); err != nil {
		t.Fatal(err)
	}
	if err := writeManifest(b, m); err != nil {
		t.Fatal(err)
	}
	res, err := w.backupFS(ctx, b, "backup", BackupOptions{Incremental: true})
	if err != nil || res.Seq != 4 {
		t.Fatalf("incremental pass: seq %d, %v; want 4", res.Seq, err)
	}
	if _, err := verifyBackupFS(ctx, vfs.ReadOnly(b), "backup", VerifyBackupOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestIncrementalAcrossAnEmptySegmentReplaced: a writer of this release
// opening a log whose newest segment is an empty one of format version 1
// replaces it, under its name, by a version 2 segment. A backup followed
// across that holds the old empty segment's header as a prefix the new
// file does not start with; no event of the backup is lost, so the pass
// must copy the new segment, not end FollowBackup with ErrBackupDiverged.
func TestIncrementalAcrossAnEmptySegmentReplaced(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	v1Log(t, mem, 0)
	ro, err := openFS(vfs.ReadOnly(mem), Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	b := vfs.NewMem()
	_, err = ro.backupFS(ctx, b, "backup", BackupOptions{})
	ro.Close()
	if err != nil {
		t.Fatal(err)
	}
	w := openMem(t, mem, Options{})
	defer w.Close()
	appendN(t, w, "new", 3)
	res, err := w.backupFS(ctx, b, "backup", BackupOptions{Incremental: true})
	if err != nil || res.Seq != 3 {
		t.Fatalf("incremental pass after the empty segment was replaced: seq %d, %v; want 3", res.Seq, err)
	}
	if _, err := verifyBackupFS(ctx, vfs.ReadOnly(b), "backup", VerifyBackupOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreDryRunChecksTheTarget: a dry run says what the restore would
// do; into a directory the restore refuses (not empty), it must refuse
// too, not print a plan the restore then does not carry out.
func TestRestoreDryRunChecksTheTarget(t *testing.T) {
	ctx := t.Context()
	l, dir, _ := backupLog(t, 10, Options{})
	bdir := filepath.Join(t.TempDir(), "b")
	if _, err := l.Backup(ctx, bdir, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	_, real := Restore(ctx, bdir, dir, RestoreOptions{})
	_, dry := Restore(ctx, bdir, dir, RestoreOptions{DryRun: true})
	if real == nil || dry == nil {
		t.Fatalf("restore into the log's own (non-empty) directory: %v; dry run: %v; want both refused", real, dry)
	}
}

// TestRestoreHoldsTheTargetWhileWriting: the restore found the target
// empty; a writer that opens it before the restore writes anything (here
// at the restore's first write into it) must be refused, or its
// acknowledged events would be removed and overwritten by the restore.
// TestRestoreRefusesADirectoryInUse is the writer that was there first.
func TestRestoreHoldsTheTargetWhileWriting(t *testing.T) {
	cs := newCrashSource(t)
	restore := memRestore(t, cs)
	dst := vfs.NewMem()
	var (
		tried   bool
		openErr error
	)
	wrapped := vfs.NewFaulty(dst, func(op vfs.Op) error {
		if op.Kind.Mutating() && !tried {
			tried = true
			w, err := openFS(dst, Options{}, false)
			if err == nil {
				appendN(t, w, "mine", 5)
				w.Close()
			}
			openErr = err
		}
		return nil
	})
	if err := restore(wrapped); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if !tried {
		t.Fatal("the restore wrote nothing")
	}
	if !errors.Is(openErr, ErrLocked) {
		t.Fatalf("a writer opening the target while the restore writes into it: %v, want ErrLocked", openErr)
	}
}

// TestIncrementalRefusesARewrittenSealedSegment: a sealed segment the
// backup holds whole, which the log now holds under the same name with
// other bytes (a log rewritten under the backup: a compaction writes new
// names), was replaced by the pass, under the manifest that listed it —
// the backup's copy may be the only one of those events. The pass must
// refuse (ErrBackupDiverged) and leave the backup as it was.
func TestIncrementalRefusesARewrittenSealedSegment(t *testing.T) {
	ctx := t.Context()
	l := openMem(t, vfs.NewMem(), Options{SegmentSize: MinSegmentSize})
	defer l.Close()
	appendN(t, l, "r", 300)
	b := vfs.NewMem()
	if _, err := l.backupFS(ctx, b, "backup", BackupOptions{NoLink: true}); err != nil {
		t.Fatal(err)
	}
	m, err := readManifest(b, "backup")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(m.Files, func(f BackupedFile) bool { return f.Sealed })
	if i < 0 {
		t.Fatal("no sealed segment in the backup")
	}
	// The backup's copy: another sealed segment under the log's name (its
	// trailer differs), listed as such.
	f := &m.Files[i]
	data, err := b.ReadFile(f.Name)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0xff
	sum := sha256.Sum256(data)
	f.SHA256, f.Trailer = hex.EncodeToString(sum[:]), hex.EncodeToString(data[len(data)-segment.TrailerSize:])
	if err := b.WriteFile(f.Name, data); err != nil {
		t.Fatal(err)
	}
	if err := writeManifest(b, m); err != nil {
		t.Fatal(err)
	}
	before, err := b.ReadFile(ManifestFile)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.backupFS(ctx, b, "backup", BackupOptions{Incremental: true, NoLink: true})
	if !errors.Is(err, ErrBackupDiverged) {
		t.Fatalf("incremental pass over a sealed segment the log holds with other bytes: %v, want ErrBackupDiverged", err)
	}
	if got, err := b.ReadFile(f.Name); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the backup's copy of %s was changed (%v)", f.Name, err)
	}
	if got, err := b.ReadFile(ManifestFile); err != nil || !bytes.Equal(got, before) {
		t.Errorf("the manifest was changed (%v)", err)
	}
}
