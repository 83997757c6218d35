package evlog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/snapshot"
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
	whole := memRestore(t, cs)
	prefill := func(m *vfs.Mem) {
		if err := whole(m); err != nil {
			t.Fatal(err)
		}
		if err := m.WriteFile(RestoreMarker, []byte("{}")); err != nil {
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
	lying := func(f vfs.FS) vfs.FS { return lyingFS{FS: f, files: true} }
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

var _ = snapshot.Meta{}
