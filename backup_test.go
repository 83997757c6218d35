package evlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/snapshot"
	"github.com/google/go-cmp/cmp"
)

// backupLog appends n workload batches to a new log in a temporary
// directory (small segments, so that it has several) with a snapshot
// every few batches, and returns the log, its directory and the batches.
func backupLog(t *testing.T, n int, opts Options) (*Log, string, []*batch) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "log")
	if opts.SegmentSize == 0 {
		opts.SegmentSize = MinSegmentSize
	}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	work := genWorkload(7, n)
	if err := runWorkload(t.Context(), l, work); err != nil {
		t.Fatal(err)
	}
	return l, dir, work
}

// saveSnapshots saves a snapshot of subject "all" at each of seqs.
func saveSnapshots(t *testing.T, l *Log, seqs ...uint64) {
	t.Helper()
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range seqs {
		tm, err := l.eventTime(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Save(t.Context(), snapshot.Meta{Name: "all", LogID: l.LogID(), Seq: s, Time: tm, SchemaVersion: 1}, []byte("state")); err != nil {
			t.Fatal(err)
		}
	}
}

// batchEnds returns the last seq of every acknowledged batch.
func batchEnds(work []*batch) []uint64 {
	var out []uint64
	for _, b := range work {
		if b.acked {
			last := b.pos[len(b.pos)-1]
			out = append(out, last.Seq)
		}
	}
	return out
}

// logEvents opens dir read-only and returns its events.
func logEvents(t *testing.T, dir string) []Envelope {
	t.Helper()
	l, err := OpenReadOnly(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return readAll(t, l)
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	for _, noLink := range []bool{false, true} {
		t.Run(map[bool]string{false: "link", true: "copy"}[noLink], func(t *testing.T) {
			l, _, _ := backupLog(t, 300, Options{})
			saveSnapshots(t, l, 100, 400)
			want := readAll(t, l)
			bdir := filepath.Join(t.TempDir(), "backup")
			res, err := l.Backup(t.Context(), bdir, BackupOptions{NoLink: noLink})
			if err != nil {
				t.Fatal(err)
			}
			if res.Seq != l.LastSeq() || (noLink && res.Linked > 0) || (!noLink && res.Linked == 0) {
				t.Fatalf("backup result %+v (log ends at %d)", res, l.LastSeq())
			}
			if _, err := VerifyBackup(t.Context(), bdir); err != nil {
				t.Fatalf("VerifyBackup: %v", err)
			}
			rdir := filepath.Join(t.TempDir(), "restored")
			plan, err := Restore(t.Context(), bdir, rdir, RestoreOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if plan.EndSeq != res.Seq || plan.NewLogID == "" || plan.NewLogID == plan.LogID {
				t.Fatalf("plan %+v", plan)
			}
			if diff := cmp.Diff(want, logEvents(t, rdir), envCmp...); diff != "" {
				t.Fatalf("restored events differ (-want +got):\n%s", diff)
			}
			rep, err := Verify(t.Context(), rdir)
			if err != nil || len(rep.Findings) > 0 {
				t.Fatalf("Verify of the restored log: %v %v", rep.Findings, err)
			}
			// The restored log is writable, and its snapshots are its own.
			rl, err := Open(rdir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer rl.Close()
			store, err := rl.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			metas, err := store.List("all")
			if err != nil || len(metas) != 2 {
				t.Fatalf("restored snapshots: %v %v", metas, err)
			}
			for _, m := range metas {
				if m.LogID != rl.LogID() {
					t.Fatalf("snapshot %s has log ID %x, the restored log %x", m.File, m.LogID, rl.LogID())
				}
			}
			if _, err := rl.Append(t.Context(), "after-restore", ExpectAny, Envelope{Type: "x"}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Restoring to every batch boundary, by seq and by time, yields exactly
// the source's prefix; a target between boundaries ends at the boundary
// before it.
func TestRestoreToEveryBoundary(t *testing.T) {
	l, _, work := backupLog(t, 120, Options{})
	saveSnapshots(t, l, 50, 150)
	all := readAll(t, l)
	bdir := filepath.Join(t.TempDir(), "backup")
	if _, err := l.Backup(t.Context(), bdir, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	ends := batchEnds(work)
	prevEnd := func(seq uint64) uint64 {
		i, _ := slices.BinarySearch(ends, seq+1)
		if i == 0 {
			return 0
		}
		return ends[i-1]
	}
	// Every seq, in parallel ranges: each restore is independent and spends
	// most of its time waiting for fsyncs, which overlap.
	const chunk = 16
	var n atomic.Int64
	t.Run("ranges", func(t *testing.T) {
		for lo := uint64(1); lo <= uint64(len(all)); lo += chunk {
			hi := min(lo+chunk-1, uint64(len(all)))
			t.Run(fmt.Sprintf("%d-%d", lo, hi), func(t *testing.T) {
				t.Parallel()
				for seq := lo; seq <= hi; seq++ {
					restoreToBoundary(t, bdir, all, seq, prevEnd)
					n.Add(1)
				}
			})
		}
	})
	if n.Load() != int64(len(all)) {
		t.Fatalf("restored to %d seqs, want every one of %d", n.Load(), len(all))
	}
	// Once through Restore into a directory, mid-batch: the same cut.
	seq := uint64(len(all)) / 2
	rdir := filepath.Join(t.TempDir(), "r")
	plan, err := Restore(t.Context(), bdir, rdir, RestoreOptions{ToSeq: seq})
	if err != nil {
		t.Fatalf("restore to seq %d: %v", seq, err)
	}
	if want := prevEnd(seq); plan.EndSeq != want || !envsEqual(logEvents(t, rdir), all[:want]) {
		t.Fatalf("Restore to seq %d into a directory ends at %d, want %d, or its events differ", seq, plan.EndSeq, want)
	}
}

// restoreToMem is Restore from the backup directory bdir into a Mem, and
// the events the restored log holds: Restore's own restoreFS (the plan, the
// cut, every file it writes), without the destination's disk writes and
// fsyncs, which were most of TestRestoreToEveryBoundary's time and are not
// its point (the tests of Restore into a directory check those).
func restoreToMem(t *testing.T, bdir string, opts RestoreOptions) (RestorePlan, []Envelope, error) {
	t.Helper()
	src, err := vfs.OpenOS(bdir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := vfs.NewMem()
	plan := RestorePlan{Backup: bdir, Dir: "mem"}
	plan, err = restoreFS(t.Context(), src, bdir, func() (vfs.FS, error) { return dst, nil }, "mem", opts, &plan)
	if err != nil {
		return plan, nil, err
	}
	l, err := openFS(vfs.ReadOnly(dst), Options{}, true)
	if err != nil {
		t.Fatalf("opening the restored log: %v", err)
	}
	defer l.Close()
	return plan, readAll(t, l), nil
}

// restoreToBoundary restores the backup bdir of a log holding all to seq,
// which must end at the batch boundary prevEnd(seq), and, when that is past
// 0, to the boundary's time.
func restoreToBoundary(t *testing.T, bdir string, all []Envelope, seq uint64, prevEnd func(uint64) uint64) {
	t.Helper()
	prefix := func(seq uint64) []Envelope { return all[:seq] }
	want := prevEnd(seq)
	plan, got, err := restoreToMem(t, bdir, RestoreOptions{ToSeq: seq})
	if err != nil {
		t.Fatalf("restore to seq %d: %v", seq, err)
	}
	if plan.EndSeq != want {
		t.Fatalf("restore to seq %d ends at %d, want %d", seq, plan.EndSeq, want)
	}
	if !envsEqual(got, prefix(want)) {
		t.Fatalf("restore to seq %d: %s", seq, cmp.Diff(prefix(want), got, envCmp...))
	}
	// By time: the boundary's own time restores through it (and any later
	// batch recorded at the same instant).
	if want == 0 {
		return
	}
	tm := all[want-1].Time
	tseq := uint64(len(all))
	for i, e := range all {
		if e.Time.After(tm) {
			tseq = uint64(i)
			break
		}
	}
	plan, got, err = restoreToMem(t, bdir, RestoreOptions{ToTime: tm})
	if err != nil {
		t.Fatal(err)
	}
	if plan.EndSeq != prevEnd(tseq) {
		t.Fatalf("restore to time %v ends at %d, want %d", tm, plan.EndSeq, prevEnd(tseq))
	}
	if !envsEqual(got, prefix(plan.EndSeq)) {
		t.Fatalf("restore to time %v: events differ", tm)
	}
}

// An incremental backup equals a full backup taken at the same moment.
func TestIncrementalEqualsFull(t *testing.T) {
	l, _, _ := backupLog(t, 100, Options{})
	saveSnapshots(t, l, 30)
	bdir := filepath.Join(t.TempDir(), "inc")
	if _, err := l.Backup(t.Context(), bdir, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := runWorkload(t.Context(), l, laterWorkload(8, 200, time.Hour)); err != nil {
		t.Fatal(err)
	}
	saveSnapshots(t, l, l.LastSeq())
	res, err := l.Backup(t.Context(), bdir, BackupOptions{Incremental: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Kept == 0 || res.Copied+res.Linked == 0 {
		t.Fatalf("incremental pass %+v: want some files kept and some new", res)
	}
	fdir := filepath.Join(t.TempDir(), "full")
	if _, err := l.Backup(t.Context(), fdir, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	inc, full := readManifestT(t, bdir), readManifestT(t, fdir)
	if diff := cmp.Diff(full.Files, inc.Files); diff != "" || inc.Seq != full.Seq {
		t.Fatalf("incremental manifest differs from the full one (-full +inc):\n%s", diff)
	}
	for _, f := range full.Files {
		a, _ := os.ReadFile(filepath.Join(bdir, f.Name))
		b, _ := os.ReadFile(filepath.Join(fdir, f.Name))
		if string(a) != string(b) {
			t.Fatalf("%s differs", f.Name)
		}
	}
}

func readManifestT(t *testing.T, dir string) *Manifest {
	t.Helper()
	st, err := VerifyBackup(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return st.Manifest
}

// laterWorkload is genWorkload with every time moved later by d.
func laterWorkload(seed uint64, n int, d time.Duration) []*batch {
	work := genWorkload(seed, n)
	for _, b := range work {
		for i := range b.reqs {
			for j := range b.reqs[i].Events {
				b.reqs[i].Events[j].Time = b.reqs[i].Events[j].Time.Add(d)
			}
		}
	}
	return work
}

var _ = errors.Is

// A pass killed between hard-linking a segment to NAME.tmp and renaming it
// leaves a temporary that is the log's own file: the next pass must unlink
// it, never truncate and overwrite it (that would destroy the log's
// segment).
func TestBackupLeftoverLinkNotOverwritten(t *testing.T) {
	l, dir, _ := backupLog(t, 60, Options{})
	bdir := filepath.Join(t.TempDir(), "b")
	if _, err := l.Backup(t.Context(), bdir, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	before := readManifestT(t, bdir)
	if err := runWorkload(t.Context(), l, laterWorkload(9, 60, time.Hour)); err != nil {
		t.Fatal(err)
	}
	segs, err := l.Segments()
	if err != nil {
		t.Fatal(err)
	}
	var fresh string
	for _, s := range segs {
		if _, ok := before.file(s.File); !ok && s.Sealed {
			fresh = s.File
		}
	}
	if fresh == "" {
		t.Fatal("no new sealed segment")
	}
	want, err := os.ReadFile(filepath.Join(dir, fresh))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, fresh), filepath.Join(bdir, fresh+".tmp")); err != nil {
		t.Skipf("no hard links here: %v", err)
	}
	if _, err := l.Backup(t.Context(), bdir, BackupOptions{Incremental: true, NoLink: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, fresh)); err != nil || string(got) != string(want) {
		t.Fatalf("the log's segment %s was changed by the backup (%d bytes, want %d; %v)", fresh, len(got), len(want), err)
	}
	if rep, err := Verify(t.Context(), dir); err != nil || len(rep.Findings) > 0 {
		t.Fatalf("Verify of the log: %v %v", rep.Findings, err)
	}
}

// A backup into the log's own directory is refused before anything is
// written.
func TestBackupIntoLogDirRefused(t *testing.T) {
	for _, ro := range []bool{false, true} {
		l, dir, _ := backupLog(t, 20, Options{})
		src := l
		if ro {
			r, err := OpenReadOnly(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			src = r
		}
		names := func() []string {
			es, _ := os.ReadDir(dir)
			var out []string
			for _, e := range es {
				out = append(out, e.Name())
			}
			return out
		}
		before := names()
		if _, err := src.Backup(t.Context(), dir, BackupOptions{}); err == nil {
			t.Fatalf("read-only %v: a backup into the log's directory succeeded", ro)
		}
		if diff := cmp.Diff(before, names()); diff != "" {
			t.Fatalf("read-only %v: the log directory changed:\n%s", ro, diff)
		}
	}
}
