package evlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
)

// crashSource is a log on a Mem (small segments, two snapshots) that the
// backup crash loops copy: its first part (S0) is backed up completely,
// its whole (S1) is then backed up incrementally.
type crashSource struct {
	l0, l  *Log // the log at S0 (read-only, over a copy) and at S1
	all    []Envelope
	ends   map[uint64]bool // batch ends
	s0, s1 uint64
}

func newCrashSource(t *testing.T) *crashSource {
	t.Helper()
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{SegmentSize: MinSegmentSize})
	first := genWorkload(3, 40)
	if err := runWorkload(t.Context(), l, first); err != nil {
		t.Fatal(err)
	}
	saveSnapshots(t, l, 20)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l0, err := openFS(vfs.ReadOnly(mem.Clone()), Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l0.Close() })
	l = openMem(t, mem, Options{SegmentSize: MinSegmentSize})
	t.Cleanup(func() { l.Close() })
	cs := &crashSource{l0: l0, l: l, s0: l0.LastSeq(), ends: map[uint64]bool{0: true}}
	second := laterWorkload(4, 40, time.Hour)
	if err := runWorkload(t.Context(), l, second); err != nil {
		t.Fatal(err)
	}
	saveSnapshots(t, l, l.LastSeq())
	cs.s1 = l.LastSeq()
	for _, e := range batchEnds(append(first, second...)) {
		cs.ends[e] = true
	}
	cs.all = readAll(t, l)
	return cs
}

// checkRestorable restores the backup in b (into memory) and returns what
// is wrong: the restore must succeed with a batch-aligned prefix of the
// source that holds at least minSeq, or (only when mayBeAbsent) refuse a
// backup whose manifest was never written.
func (cs *crashSource) checkRestorable(ctx context.Context, b vfs.FS, minSeq uint64, mayBeAbsent bool) string {
	var plan RestorePlan
	dst := vfs.NewMem()
	_, err := restoreFS(ctx, b, "backup", func() (vfs.FS, error) { return dst, nil }, "restored", RestoreOptions{}, &plan)
	if err != nil {
		if mayBeAbsent && errors.Is(err, ErrNotABackup) {
			return ""
		}
		return fmt.Sprintf("restore: %v", err)
	}
	if plan.EndSeq < minSeq || !cs.ends[plan.EndSeq] {
		return fmt.Sprintf("restored up to seq %d: want a batch end at or after %d", plan.EndSeq, minSeq)
	}
	rl, err := openFS(dst, Options{}, true)
	if err != nil {
		return fmt.Sprintf("opening the restored log: %v", err)
	}
	defer rl.Close()
	var got []Envelope
	for e, err := range rl.Events(ctx, 1) {
		if err != nil {
			return fmt.Sprintf("reading the restored log: %v", err)
		}
		got = append(got, e)
	}
	if !envsEqual(got, cs.all[:plan.EndSeq]) {
		return fmt.Sprintf("the restored log (%d events) is not the source's first %d events", len(got), plan.EndSeq)
	}
	return ""
}

// backupCrashLoop crashes a full backup, and an incremental one over a
// complete earlier backup, at every mutating op of the backup directory,
// and restores what each crash model leaves. wrap makes the directory lie
// (teeth).
func backupCrashLoop(t *testing.T, cs *crashSource, wrap func(vfs.FS) vfs.FS) []string {
	ctx := t.Context()
	var bad []string
	for _, phase := range []string{"full", "incremental"} {
		prepare := func() (*vfs.Mem, int) {
			m := vfs.NewMem()
			if phase == "incremental" {
				if _, err := cs.l0.backupFS(ctx, wrap(m), "backup", BackupOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			return m, m.Ops()
		}
		probe, base := prepare()
		inc := phase == "incremental"
		if _, err := cs.l.backupFS(ctx, wrap(probe), "backup", BackupOptions{Incremental: inc}); err != nil {
			t.Fatal(err)
		}
		total := probe.Ops() - base
		for k := range total + 1 {
			m, base := prepare()
			m.CrashAt(base + k)
			_, err := cs.l.backupFS(ctx, wrap(m), "backup", BackupOptions{Incremental: inc})
			if k < total && err == nil {
				bad = append(bad, fmt.Sprintf("%s k=%d: the crash went unnoticed", phase, k))
			}
			for _, model := range vfs.CrashModels() {
				rng := rand.New(rand.NewPCG(uint64(k), uint64(model)))
				after := m.CrashClone(model, rng)
				minSeq := uint64(0)
				switch {
				case k >= total:
					minSeq = cs.s1
				case inc:
					minSeq = cs.s0
				}
				if msg := cs.checkRestorable(ctx, after, minSeq, !inc && k < total); msg != "" {
					bad = append(bad, fmt.Sprintf("%s k=%d/%d model=%v: %s", phase, k, total, model, msg))
				}
			}
		}
		t.Logf("%s backup: crashed at each of %d ops under %d models", phase, total+1, len(vfs.CrashModels()))
	}
	return bad
}

func TestBackupCrashLoop(t *testing.T) {
	cs := newCrashSource(t)
	for _, b := range backupCrashLoop(t, cs, func(f vfs.FS) vfs.FS { return f }) {
		t.Error(b)
	}
}

// memRestore backs cs's log up into a Mem and returns a function
// restoring that backup into dst (as directory "r").
func memRestore(t *testing.T, cs *crashSource) func(dst vfs.FS) error {
	t.Helper()
	restore := memRestoreOpts(t, cs, RestoreOptions{})
	return func(dst vfs.FS) error {
		_, err := restore(dst)
		return err
	}
}

// memRestoreOpts is memRestore with options, returning the plan.
func memRestoreOpts(t *testing.T, cs *crashSource, opts RestoreOptions) func(dst vfs.FS) (RestorePlan, error) {
	t.Helper()
	ctx := t.Context()
	b := vfs.NewMem()
	if _, err := cs.l.backupFS(ctx, b, "backup", BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	return func(dst vfs.FS) (RestorePlan, error) {
		var plan RestorePlan
		return restoreFS(ctx, b, "backup", func() (vfs.FS, error) { return dst, nil }, "r", opts, &plan)
	}
}

// restoreCrashLoop crashes a restore at every mutating op of the target
// directory: what survives is refused by Open (an interrupted restore) or
// is the complete restored log, and a second restore into it completes.
func restoreCrashLoop(t *testing.T, cs *crashSource, wrap func(vfs.FS) vfs.FS) []string {
	return restoreCrashLoopWith(t, cs, wrap, RestoreOptions{}, nil)
}

// restoreCrashLoopWith is restoreCrashLoop for a restore with opts into a
// directory that prefill (when set) fills first (an interrupted restore).
func restoreCrashLoopWith(t *testing.T, cs *crashSource, wrap func(vfs.FS) vfs.FS, opts RestoreOptions, prefill func(*vfs.Mem)) []string {
	restoreOpts := memRestoreOpts(t, cs, opts)
	restore := func(dst vfs.FS) error {
		_, err := restoreOpts(dst)
		return err
	}
	start := func() (*vfs.Mem, int) {
		m := vfs.NewMem()
		if prefill != nil {
			prefill(m)
		}
		return m, m.Ops()
	}
	probe, base := start()
	plan, err := restoreOpts(wrap(probe))
	if err != nil {
		t.Fatal(err)
	}
	total := probe.Ops() - base
	want := cs.all[:plan.EndSeq]
	check := func(fsys vfs.FS, done bool) string {
		l, err := openFS(fsys, Options{}, true)
		if err != nil {
			if !done && (errors.Is(err, ErrRestoreIncomplete) || errors.Is(err, ErrNotALog)) {
				return ""
			}
			return fmt.Sprintf("open: %v", err)
		}
		defer l.Close()
		got := readAll(t, l)
		if len(got) == 0 && !done && prefill == nil {
			return "" // nothing written yet: an empty directory
		}
		if !envsEqual(got, want) {
			return fmt.Sprintf("opened a log of %d events, want the restore's %d", len(got), len(want))
		}
		return ""
	}
	var bad []string
	for k := range total + 1 {
		m, base := start()
		m.CrashAt(base + k)
		err := restore(wrap(m))
		for _, model := range vfs.CrashModels() {
			rng := rand.New(rand.NewPCG(uint64(k), uint64(model)))
			after := m.CrashClone(model, rng)
			if msg := check(wrap(after), err == nil); msg != "" {
				bad = append(bad, fmt.Sprintf("k=%d/%d model=%v: %s", k, total, model, msg))
				continue
			}
			// Running the restore again completes it, or refuses a
			// directory that holds the complete restored log (a restore
			// whose marker removal was durable).
			again := after.CrashClone(vfs.DropUnsynced, nil)
			names, err := again.List()
			if err != nil {
				t.Fatal(err)
			}
			if checkRestoreNames("r", names) != nil {
				if msg := check(again, true); msg != "" {
					bad = append(bad, fmt.Sprintf("k=%d model=%v: a new restore refuses the directory, and %s", k, model, msg))
				}
				continue
			}
			if err := restore(again); err != nil {
				bad = append(bad, fmt.Sprintf("k=%d model=%v: the second restore: %v", k, model, err))
			} else if msg := check(again, true); msg != "" {
				bad = append(bad, fmt.Sprintf("k=%d model=%v: after the second restore: %s", k, model, msg))
			}
		}
	}
	t.Logf("restore: crashed at each of %d ops under %d models", total+1, len(vfs.CrashModels()))
	return bad
}

func TestRestoreCrashLoop(t *testing.T) {
	cs := newCrashSource(t)
	for _, b := range restoreCrashLoop(t, cs, func(f vfs.FS) vfs.FS { return f }) {
		t.Error(b)
	}
}

// TestRestoreCrashLoopPointInTime is the restore crash loop for what the
// whole restore into an empty directory does not exercise: a restore to a
// seq inside a batch in the middle of the log (a segment cut, later ones
// and the later snapshot left out) into a directory holding an
// interrupted restore of the whole backup (every segment and snapshot
// written, the marker still there), whose later files must not survive
// into the restored log.
func TestRestoreCrashLoopPointInTime(t *testing.T) {
	cs := newCrashSource(t)
	whole := memRestoreOpts(t, cs, RestoreOptions{})
	prefill := func(m *vfs.Mem) {
		plan, err := whole(m)
		if err != nil {
			t.Fatal(err)
		}
		marker, err := json.Marshal(plan)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.WriteFile(RestoreMarker, marker); err != nil {
			t.Fatal(err)
		}
		if err := m.SyncDir(); err != nil {
			t.Fatal(err)
		}
	}
	to := cs.s0 + (cs.s1-cs.s0)/2
	for cs.ends[to] {
		to++ // inside a batch
	}
	opts := RestoreOptions{ToSeq: to}
	for _, b := range restoreCrashLoopWith(t, cs, func(f vfs.FS) vfs.FS { return f }, opts, prefill) {
		t.Error(b)
	}
}

// The loops have teeth: a backup directory or a restore target that
// acknowledges fsyncs without doing them breaks them.
func TestBackupCrashLoopsHaveTeeth(t *testing.T) {
	cs := newCrashSource(t)
	lying := func(f vfs.FS) vfs.FS { return vfs.NoSync{FS: f, Dirs: true, Files: vfs.AnyFile} }
	if bad := backupCrashLoop(t, cs, lying); len(bad) == 0 {
		t.Error("the backup crash loop found no violation with fsyncs skipped: it has no teeth")
	} else {
		t.Logf("backup: %d violations, e.g. %s", len(bad), bad[0])
	}
	if bad := restoreCrashLoop(t, cs, lying); len(bad) == 0 {
		t.Error("the restore crash loop found no violation with fsyncs skipped: it has no teeth")
	} else {
		t.Logf("restore: %d violations, e.g. %s", len(bad), bad[0])
	}
}

// restoredState is what a restore of a backup yields: its events and, per
// snapshot (subject@seq), its schema version and state.
type restoredState struct {
	plan   RestorePlan
	events []Envelope
	snaps  map[string]string
}

// restoreState restores the backup in b into memory and reads it back.
func restoreState(ctx context.Context, b vfs.FS) (restoredState, error) {
	var rs restoredState
	dst := vfs.NewMem()
	if _, err := restoreFS(ctx, b, "backup", func() (vfs.FS, error) { return dst, nil }, "r", RestoreOptions{}, &rs.plan); err != nil {
		return rs, fmt.Errorf("restore: %w", err)
	}
	rl, err := openFS(vfs.ReadOnly(dst), Options{}, true)
	if err != nil {
		return rs, fmt.Errorf("opening the restored log: %w", err)
	}
	defer rl.Close()
	for e, err := range rl.Events(ctx, 1) {
		if err != nil {
			return rs, fmt.Errorf("reading the restored log: %w", err)
		}
		rs.events = append(rs.events, e)
	}
	rs.snaps, err = snapStates(ctx, rl)
	return rs, err
}

// snapStates returns l's snapshots of subject "all" (the only one the
// backup pass cases save): subject@seq to schema version and state.
func snapStates(ctx context.Context, l *Log) (map[string]string, error) {
	store, err := l.Snapshots()
	if err != nil {
		return nil, err
	}
	ms, err := store.List("all")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, m := range ms {
		state, err := store.Load(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("loading snapshot %s@%d: %w", m.Name, m.Seq, err)
		}
		out[fmt.Sprintf("%s@%d", m.Name, m.Seq)] = fmt.Sprintf("v%d %q", m.SchemaVersion, state)
	}
	return out, nil
}

// backupPassCrashCases are the pass cases (see passCases) whose pass
// writes in the order that "Beside a backup pass" (docs/BACKUP.md)
// describes for a file it cannot simply append to: a snapshot saved again
// and an empty newest segment replaced (an in-between manifest without
// the entry, published before the file is replaced), and a copy kept
// shorter (a lost mark), or listed shorter and then appended to (a lost
// mark, the log grown where it was: an in-between manifest listing the
// copy without the mark, published before the copy is cut). grow is how
// many events the source gets after the case's setup, so that the pass
// also appends to the newest segment.
var backupPassCrashCases = []struct {
	name string
	grow int
}{
	{"snapshot saved again", 3},
	{"empty segment replaced", 0},
	{"mark lost", 0},
	{"mark lost, then grown", 0},
}

// backupPassCrashLoop crashes an incremental pass of each of
// backupPassCrashCases at every mutating op of the backup directory and,
// for each crash model, checks what survives: the backup verifies; it
// restores exactly the source's events up to the S of the previous pass
// or of the crashed one (nothing else is ever published), with each
// snapshot as the previous backup or the source holds it; and a following
// pass completes, after which the backup verifies and restores the
// source's every event and snapshot. It returns the violations and the
// number of crash states checked.
func backupPassCrashLoop(t *testing.T) (bad []string, checked int) {
	ctx := t.Context()
	cases := passCases(ctx)
	for _, pc := range backupPassCrashCases {
		i := slices.IndexFunc(cases, func(c passCase) bool { return c.name == pc.name })
		if i < 0 {
			t.Fatalf("no pass case %q", pc.name)
		}
		fx := cases[i].setup(t)
		if pc.grow > 0 {
			appendN(t, fx.src, "grown", pc.grow)
		}
		base := fx.b.(*vfs.Mem)
		prev, err := readManifest(base, "backup")
		if err != nil {
			t.Fatal(err)
		}
		before, err := restoreState(ctx, base.Clone())
		if err != nil {
			t.Fatalf("%s: the backup before the pass: %v", pc.name, err)
		}
		all := readAll(t, fx.src)
		srcSnaps, err := snapStates(ctx, fx.src)
		if err != nil {
			t.Fatal(err)
		}
		s0, s1 := prev.Seq, fx.src.LastSeq()
		// A snapshot restored from any state is the previous backup's or
		// the source's.
		snapOK := func(got map[string]string) string {
			for k, v := range got {
				if v != before.snaps[k] && v != srcSnaps[k] {
					return fmt.Sprintf("snapshot %s is %s: neither the previous backup's (%s) nor the source's (%s)", k, v, before.snaps[k], srcSnaps[k])
				}
			}
			return ""
		}
		// check returns what is wrong with a backup directory after a
		// crash ("" if nothing): the published manifest's S is one of
		// seqs.
		check := func(b vfs.FS, seqs ...uint64) string {
			rep, err := verifyBackupFS(ctx, vfs.ReadOnly(b), "backup", VerifyBackupOptions{})
			if err != nil {
				return fmt.Sprintf("VerifyBackup: %v", err)
			}
			if !slices.Contains(seqs, rep.Manifest.Seq) {
				return fmt.Sprintf("the manifest says seq %d, want one of %v", rep.Manifest.Seq, seqs)
			}
			rs, err := restoreState(ctx, b)
			if err != nil {
				return err.Error()
			}
			if rs.plan.EndSeq != rep.Manifest.Seq {
				return fmt.Sprintf("restored up to seq %d, the manifest says %d", rs.plan.EndSeq, rep.Manifest.Seq)
			}
			if !envsEqual(rs.events, all[:rs.plan.EndSeq]) {
				return fmt.Sprintf("the restored log (%d events) is not the source's first %d events", len(rs.events), rs.plan.EndSeq)
			}
			return snapOK(rs.snaps)
		}

		probe := base.Clone()
		if _, err := fx.src.backupFS(ctx, probe, "backup", BackupOptions{Incremental: true}); err != nil {
			t.Fatalf("%s: the pass: %v", pc.name, err)
		}
		total := probe.Ops()
		for k := range total + 1 {
			m := base.Clone()
			m.CrashAt(k)
			_, err := fx.src.backupFS(ctx, m, "backup", BackupOptions{Incremental: true})
			switch {
			case k < total && !errors.Is(err, vfs.ErrCrashed):
				bad = append(bad, fmt.Sprintf("%s k=%d/%d: the pass returned %v, want the crash", pc.name, k, total, err))
			case k == total && err != nil:
				bad = append(bad, fmt.Sprintf("%s k=%d/%d: the uncrashed pass: %v", pc.name, k, total, err))
			}
			for _, model := range vfs.CrashModels() {
				checked++
				rng := rand.New(rand.NewPCG(uint64(k), uint64(model)))
				after := m.CrashClone(model, rng)
				what := fmt.Sprintf("%s k=%d/%d model=%v", pc.name, k, total, model)
				if msg := check(after, s0, s1); msg != "" {
					bad = append(bad, what+": "+msg)
					continue
				}
				// The next pass completes, and the backup then holds the
				// source whole.
				res, err := fx.src.backupFS(ctx, after, "backup", BackupOptions{Incremental: true})
				if err != nil {
					bad = append(bad, fmt.Sprintf("%s: the following pass: %v", what, err))
					continue
				}
				if res.Seq != s1 {
					bad = append(bad, fmt.Sprintf("%s: the following pass backed up to seq %d, want %d", what, res.Seq, s1))
					continue
				}
				if msg := check(after, s1); msg != "" {
					bad = append(bad, fmt.Sprintf("%s: after the following pass: %s", what, msg))
					continue
				}
				if rs, err := restoreState(ctx, after); err != nil || !maps.Equal(rs.snaps, srcSnaps) {
					bad = append(bad, fmt.Sprintf("%s: after the following pass, the restored snapshots are %v (%v), want the source's %v", what, rs.snaps, err, srcSnaps))
				}
			}
		}
		t.Logf("%s: crashed the pass at each of %d ops under %d models", pc.name, total+1, len(vfs.CrashModels()))
	}
	return bad, checked
}

// TestBackupPassCrashLoop crashes incremental passes that take the paths
// of a pass that must not change what the published manifest lists (an
// in-between manifest, a copy kept shorter) at every write op.
func TestBackupPassCrashLoop(t *testing.T) {
	bad, checked := backupPassCrashLoop(t)
	for _, b := range bad {
		t.Error(b)
	}
	// Every case crashes at several ops (its pass writes at least a
	// manifest: a temporary, its fsync, a rename, a directory fsync).
	if min := len(backupPassCrashCases) * 5 * len(vfs.CrashModels()); checked < min {
		t.Errorf("checked %d crash states, want at least %d", checked, min)
	}
}

// TestBackupPassCrashLoopHasTeeth: a pass that replaces a file before it
// publishes the manifest without it (or cuts a copy before it publishes
// the manifest listing it shorter), or publishes that manifest without
// fsyncing it, breaks the backup pass crash loop.
func TestBackupPassCrashLoopHasTeeth(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T)
		cases   []string // the cases whose pass takes the broken path
	}{
		{"replaced before unpublished", func(t *testing.T) {
			unpublishSkipped = true
			t.Cleanup(func() { unpublishSkipped = false })
		}, []string{"snapshot saved again", "empty segment replaced", "mark lost, then grown"}},
		{"in-between manifest not fsynced", func(t *testing.T) {
			writeUnpublished = writeManifestUnsynced
			t.Cleanup(func() { writeUnpublished = writeManifest })
		}, []string{"snapshot saved again", "empty segment replaced", "mark lost, then grown"}},
		{"kept copy cut while listed longer", func(t *testing.T) {
			keptCopyCut = true
			t.Cleanup(func() { keptCopyCut = false })
		}, []string{"mark lost"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.breakIt(t)
			bad, _ := backupPassCrashLoop(t)
			// Each case that takes the broken path must catch it.
			for _, c := range tc.cases {
				i := slices.IndexFunc(bad, func(b string) bool { return strings.HasPrefix(b, c+" ") })
				if i < 0 {
					t.Errorf("case %q found no violation: the loop has no teeth there", c)
					continue
				}
				t.Logf("%s: e.g. %s", c, bad[i])
			}
			t.Logf("%d violations in all", len(bad))
		})
	}
}

// writeManifestUnsynced is writeManifest without the temporary's fsync
// (teeth).
func writeManifestUnsynced(dst vfs.FS, m *Manifest) error {
	b, err := encodeManifest(m)
	if err != nil {
		return err
	}
	tmp := ManifestFile + ".tmp"
	f, err := dst.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = dst.Rename(tmp, ManifestFile)
	}
	if err == nil {
		err = dst.SyncDir()
	}
	return err
}
