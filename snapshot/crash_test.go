package snapshot

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

var crashSeed = flag.Uint64("crash.seed", 0, "seed of the crash tests' random choices (0: random)")

// step is one operation of the crash workload: a Save of name at seq, or,
// when prune is set, a Prune of name keeping the newest snapshot, or, when
// remove is set, a Remove of name's snapshot at seq.
type step struct {
	name   string
	seq    uint64
	prune  bool
	remove bool
}

// crashWorkload saves, prunes and removes snapshots of two subjects; states
// differ per seq and are over 256 bytes (frames declare their size).
var crashWorkload = []step{
	{name: "cart/1", seq: 3},
	{name: "stats", seq: 4},
	{name: "cart/1", seq: 7},
	{name: "cart/1", prune: true},
	{name: "stats", seq: 9},
	{name: "stats", seq: 4, remove: true},
	{name: "cart/1", seq: 12},
}

// acked is what the workload was told succeeded before it stopped.
type acked struct {
	saved   map[string]uint64 // name → newest acknowledged seq
	pruned  map[string]uint64 // name → newest seq at an acknowledged Prune
	removed map[string]bool   // files of acknowledged Removes
	tried   map[string][]uint64
}

// runWorkload runs steps against s until one fails.
func runWorkload(t *testing.T, s *Store, steps []step) (acked, error) {
	t.Helper()
	a := acked{saved: map[string]uint64{}, pruned: map[string]uint64{}, removed: map[string]bool{}, tried: map[string][]uint64{}}
	for _, st := range steps {
		if st.remove {
			if err := s.Remove(t.Context(), meta(st.name, st.seq)); err != nil {
				return a, err
			}
			a.removed[FormatFileName(st.name, st.seq)] = true
			continue
		}
		if st.prune {
			if _, err := s.Prune(t.Context(), st.name, PrunePolicy{KeepLast: 1}); err != nil {
				return a, err
			}
			a.pruned[st.name] = a.saved[st.name]
			continue
		}
		a.tried[st.name] = append(a.tried[st.name], st.seq)
		if _, err := s.Save(t.Context(), meta(st.name, st.seq), stateOf(st.name, st.seq)); err != nil {
			return a, err
		}
		a.saved[st.name] = st.seq
	}
	return a, nil
}

// seed returns the seed for random choices, logging it.
func seed(t *testing.T) uint64 {
	s := *crashSeed
	if s == 0 {
		s = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -crash.seed=%d)", s, s)
	return s
}

// TestCrashDuringWorkload loses power at every mutating operation of a
// workload of Saves and a Prune, under every crash model, then checks what
// a new Store finds: for each subject, Latest returns a snapshot that
// verifies and holds the state saved for its seq, at least as new as the
// newest acknowledged Save; every listed snapshot verifies; a snapshot an
// acknowledged Prune removed stays removed; and a writer can clean up and
// save again.
func TestCrashDuringWorkload(t *testing.T) {
	base := seed(t)
	ops := workloadOps(t, nil)
	for k := range ops + 1 {
		for _, model := range vfs.CrashModels() {
			t.Run(fmt.Sprintf("op=%d/model=%v", k, model), func(t *testing.T) {
				crashWorkloadAt(t, k, ops, model, base, nil, t.Errorf)
			})
		}
	}
}

// workloadOps returns the number of mutating operations of the workload
// (through wrap, when not nil).
func workloadOps(t *testing.T, wrap func(vfs.FS) vfs.FS) int {
	t.Helper()
	dry := vfs.NewMem()
	if _, err := runWorkload(t, newStore(t, wrapped(dry, wrap)), crashWorkload); err != nil {
		t.Fatal(err)
	}
	t.Logf("workload: %d mutating operations", dry.Ops())
	return dry.Ops()
}

func wrapped(mem *vfs.Mem, wrap func(vfs.FS) vfs.FS) vfs.FS {
	if wrap == nil {
		return mem
	}
	return wrap(mem)
}

// crashWorkloadAt runs the workload on a Mem (wrapped by wrap, when not
// nil) that loses power at op k (of ops), and checks what survives under
// model, reporting violations to errorf.
func crashWorkloadAt(t *testing.T, k, ops int, model vfs.CrashModel, base uint64, wrap func(vfs.FS) vfs.FS, errorf func(string, ...any)) {
	t.Helper()
	mem := vfs.NewMem()
	mem.CrashAt(k)
	a, err := runWorkload(t, newStore(t, wrapped(mem, wrap)), crashWorkload)
	if k < ops && !errors.Is(err, vfs.ErrCrashed) {
		errorf("workload error = %v, want vfs.ErrCrashed", err)
		return
	}
	if k == ops && err != nil {
		errorf("workload: %v", err)
		return
	}
	rng := rand.New(rand.NewPCG(base, uint64(k)<<8|uint64(model)))
	after := mem.CrashClone(model, rng)
	checkAfterCrash(t, after, a, errorf)
}

// TestCrashDuringWorkloadHasTeeth: with the directory fsyncs, or the
// snapshot files' fsyncs, skipped, the crash loop finds violations.
func TestCrashDuringWorkloadHasTeeth(t *testing.T) {
	base := seed(t)
	for _, tc := range []struct {
		name string
		wrap func(vfs.FS) vfs.FS
	}{
		{"no directory fsync", func(f vfs.FS) vfs.FS { return vfs.NoSync{FS: f, Dirs: true} }},
		{"no file fsync", func(f vfs.FS) vfs.FS { return vfs.NoSync{FS: f, Files: vfs.AnyFile} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops := workloadOps(t, tc.wrap)
			var bad []string
			errorf := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
			for k := range ops + 1 {
				for _, model := range vfs.CrashModels() {
					crashWorkloadAt(t, k, ops, model, base, tc.wrap, errorf)
				}
			}
			if len(bad) == 0 {
				t.Fatal("the crash loop found no violation: it has no teeth")
			}
			t.Logf("%d violations, e.g. %s", len(bad), bad[0])
		})
	}
}

func checkAfterCrash(t *testing.T, mem *vfs.Mem, a acked, errorf func(string, ...any)) {
	t.Helper()
	ro := newStore(t, vfs.ReadOnly(mem))
	list, err := ro.List("")
	if err != nil {
		errorf("List: %v", err)
		return
	}
	for _, m := range list {
		if _, err := ro.Verify(t.Context(), m.File); err != nil {
			errorf("listed snapshot %v does not verify: %v", m, err)
		}
		if !slices.Contains(a.tried[m.Name], m.Seq) {
			errorf("listed snapshot %v was never saved", m)
		}
		if p, ok := a.pruned[m.Name]; ok && m.Seq < p {
			errorf("snapshot %v survived an acknowledged Prune keeping seq %d", m, p)
		}
		if a.removed[m.File] {
			errorf("snapshot %v survived an acknowledged Remove", m)
		}
	}
	for name, tried := range a.tried {
		m, state, err := loadNewest(t.Context(), ro, name, math.MaxUint64)
		if errors.Is(err, ErrNotFound) {
			if a.saved[name] != 0 {
				errorf("no snapshot of %s, but seq %d was acknowledged", name, a.saved[name])
			}
			continue
		}
		if err != nil {
			errorf("loadNewest(%s): %v", name, err)
			return
		}
		if m.Seq < a.saved[name] || !slices.Contains(tried, m.Seq) {
			errorf("latest snapshot of %s is at seq %d; acknowledged %d, tried %v", name, m.Seq, a.saved[name], tried)
		}
		if !bytes.Equal(state, stateOf(name, m.Seq)) {
			errorf("snapshot of %s at seq %d holds a torn or wrong state", name, m.Seq)
		}
	}

	// A writer cleans up and carries on.
	w := newStore(t, mem)
	if err := w.CleanTemps(); err != nil {
		errorf("CleanTemps: %v", err)
		return
	}
	names, _ := mem.List()
	for _, n := range names {
		if strings.HasSuffix(n, tempExt) {
			errorf("temporary %s left after CleanTemps", n)
		}
	}
	if _, err := w.Save(t.Context(), meta("cart/1", 100), stateOf("cart/1", 100)); err != nil {
		errorf("Save after the crash: %v", err)
	}
}

// TestSaveFaults fails each mutating operation of a Save with ENOSPC and
// with EIO: the Save fails, no temporary is left, no partial final file
// exists (only a complete one, if only the directory fsync failed), the
// existing snapshot is untouched, and the next Saves succeed.
func TestSaveFaults(t *testing.T) {
	// Count the operations of one Save.
	probe := vfs.NewFaulty(vfs.NewMem(), nil)
	mustSave(t, newStore(t, probe), "cart/1", 1)
	ops := probe.Ops()

	for k := range ops {
		for _, fault := range []struct {
			name string
			err  error
			is   error
		}{
			{"ENOSPC", vfs.ENOSPC("disk"), syscall.ENOSPC},
			{"EIO", vfs.EIO("disk"), syscall.EIO},
			{"short write", vfs.ShortWrite(17, vfs.ENOSPC("disk")), syscall.ENOSPC},
		} {
			t.Run(fmt.Sprintf("op=%d/%s", k, fault.name), func(t *testing.T) {
				mem := vfs.NewMem()
				old := mustSave(t, newStore(t, mem), "cart/1", 1)
				oldBytes, _ := mem.ReadFile(old.File)
				s := newStore(t, vfs.NewFaulty(mem, vfs.FailAt(k, fault.err)))

				m := meta("cart/1", 5)
				_, err := s.Save(t.Context(), m, stateOf("cart/1", 5))
				if !errors.Is(err, fault.is) {
					t.Fatalf("Save = %v, want an error matching %v", err, fault.is)
				}
				names, _ := mem.List()
				for _, n := range names {
					if strings.HasSuffix(n, tempExt) {
						t.Errorf("temporary %s left behind", n)
					}
				}
				if b, _ := mem.ReadFile(old.File); !bytes.Equal(b, oldBytes) {
					t.Errorf("the existing snapshot changed")
				}
				file := FormatFileName(m.Name, m.Seq)
				present := slices.Contains(names, file)
				if present {
					// Only a failed directory fsync leaves the file, whole.
					if _, err := s.Verify(t.Context(), file); err != nil {
						t.Errorf("final file left after a failed Save does not verify: %v", err)
					}
				}
				// Retry (ErrExists if the complete file is in place), then
				// carry on.
				if _, err := s.Save(t.Context(), m, stateOf("cart/1", 5)); err != nil && !(present && errors.Is(err, ErrExists)) {
					t.Errorf("retried Save: %v", err)
				}
				mustSave(t, s, "cart/1", 9)
				m9, state, err := loadNewest(t.Context(), s, "cart/1", math.MaxUint64)
				if err != nil || m9.Seq != 9 || !bytes.Equal(state, stateOf("cart/1", 9)) {
					t.Errorf("newest snapshot after recovery = %v, %v", m9, err)
				}
			})
		}
	}
}

// TestPruneFaults fails each mutating operation of a Prune: it reports the
// error and whatever it removed, and every snapshot left verifies.
func TestPruneFaults(t *testing.T) {
	setup := func(fsys vfs.FS) *Store {
		s := newStore(t, fsys)
		saveAll(t, s, map[string][]uint64{"cart/1": {1, 2, 3, 4}})
		return s
	}
	probeMem := vfs.NewMem()
	setup(probeMem)
	probe := vfs.NewFaulty(probeMem, nil)
	if _, err := newStore(t, probe).Prune(t.Context(), "cart/1", PrunePolicy{KeepLast: 1}); err != nil {
		t.Fatal(err)
	}
	ops := probe.Ops()
	for k := range ops {
		t.Run(fmt.Sprintf("op=%d", k), func(t *testing.T) {
			mem := vfs.NewMem()
			setup(mem)
			s := newStore(t, vfs.NewFaulty(mem, vfs.FailAt(k, vfs.EIO("disk"))))
			removed, err := s.Prune(t.Context(), "cart/1", PrunePolicy{KeepLast: 1})
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("Prune = %v, want EIO", err)
			}
			left, lerr := s.List("cart/1")
			if lerr != nil {
				t.Fatal(lerr)
			}
			if len(left)+len(removed) != 4 {
				t.Errorf("%d left + %d removed, want 4", len(left), len(removed))
			}
			for _, m := range left {
				if _, err := s.Verify(t.Context(), m.File); err != nil {
					t.Errorf("%v: %v", m, err)
				}
			}
			if len(left) == 0 || left[len(left)-1].Seq != 4 {
				t.Errorf("the newest snapshot was removed: %v left", left)
			}
		})
	}
}
