package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// reorderFS passes every operation to FS (over mem), calling afterRemove
// after each successful Remove and, while skipSync is set, making SyncDir
// do nothing and report success (teeth). What a power loss leaves is
// mem's: under vfs.RemovalsFirst, a file system that persisted the
// removals made since the last directory fsync before the unsynced
// operations that preceded them (removalsFirst); and, when FS drops the
// pending directory operations at an injected SyncDir failure
// (vfs.DropOnSyncDirFailure), one where that failure lost them for good.
type reorderFS struct {
	vfs.FS
	mem *vfs.Mem

	// afterRemove, if set, is called after each successful Remove.
	afterRemove func()

	mu       sync.Mutex
	skipSync bool // SyncDir does nothing and reports success (teeth)
}

func (r *reorderFS) Remove(name string) error {
	if err := r.FS.Remove(name); err != nil {
		return err
	}
	if r.afterRemove != nil {
		r.afterRemove()
	}
	return nil
}

func (r *reorderFS) SyncDir() error {
	r.mu.Lock()
	skip := r.skipSync
	r.mu.Unlock()
	if skip {
		return nil
	}
	return r.FS.SyncDir()
}

func (r *reorderFS) setSkipSync(skip bool) {
	r.mu.Lock()
	r.skipSync = skip
	r.mu.Unlock()
}

// removalsFirst returns what survives a power loss now on a file system
// that persisted every removal made since the last successful SyncDir and
// no other unsynced change (vfs.RemovalsFirst).
func (r *reorderFS) removalsFirst() *vfs.Mem {
	return r.mem.CrashClone(vfs.RemovalsFirst, nil)
}

// TestPruneAfterFailedSaveDirSync: a Save whose directory fsync fails
// leaves its complete snapshot listed but not durable; a Prune that then
// removes the older snapshot in its favour must first make it durable, so
// that a power loss just after the removal, even one that persisted the
// removal and nothing else, leaves a snapshot of the subject. The Prune
// runs in another Store (another process beside the Save's, or this one
// reopened), which does not know that the Save's fsync failed: the Save's
// own Store refuses to prune (TestPruneAfterDroppedDirSync).
func TestPruneAfterFailedSaveDirSync(t *testing.T) {
	mem := vfs.NewMem()
	mustSave(t, newStore(t, mem), "cart/1", 1)

	rec := &reorderFS{FS: vfs.NewFaulty(mem, vfs.FailKind(vfs.OpSyncDir, 0, vfs.EIO("."))), mem: mem}
	if _, err := newStore(t, rec).Save(t.Context(), meta("cart/1", 2), stateOf("cart/1", 2)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Save with a failing directory fsync = %v, want EIO", err)
	}

	var crashes []*vfs.Mem // the state after a power loss just after each removal
	rec.afterRemove = func() { crashes = append(crashes, rec.removalsFirst()) }
	removed, err := newStore(t, rec).Prune(t.Context(), "cart/1", PrunePolicy{KeepLast: 1})
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if len(removed) != 1 || removed[0].Seq != 1 {
		t.Fatalf("Prune removed %v, want the snapshot at seq 1", removed)
	}
	for i, after := range crashes {
		ro := newStore(t, vfs.ReadOnly(after))
		m, state, err := loadNewest(t.Context(), ro, "cart/1", math.MaxUint64)
		if err != nil {
			t.Errorf("power loss just after removal %d of Prune: no snapshot of cart/1 survives: %v", i, err)
			continue
		}
		if want := stateOf("cart/1", m.Seq); string(state) != string(want) {
			t.Errorf("power loss just after removal %d: the snapshot at seq %d holds a wrong state", i, m.Seq)
		}
	}
}

// TestPruneRemovesNothingWhenDirSyncFails: when the directory fsync that
// makes the replacements durable fails, Prune removes nothing and returns
// the error.
func TestPruneRemovesNothingWhenDirSyncFails(t *testing.T) {
	mem := vfs.NewMem()
	saveAll(t, newStore(t, mem), map[string][]uint64{"cart/1": {1, 2, 3}})
	s := newStore(t, vfs.NewFaulty(mem, vfs.FailKind(vfs.OpSyncDir, 0, vfs.EIO("."))))
	removed, err := s.Prune(t.Context(), "cart/1", PrunePolicy{KeepLast: 1})
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("Prune = %v, want an error matching EIO", err)
	}
	if len(removed) != 0 {
		t.Errorf("Prune removed %v after the directory fsync failed, want nothing", removed)
	}
	left, err := s.List("cart/1")
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 3 {
		t.Errorf("%d snapshots left, want all 3: %v", len(left), left)
	}
}

// savePruneStep is one operation of the save-and-prune crash workload: a
// Save of cart/1 at seq (its directory fsync failing when failSync is
// set), or, when seq is 0, a Prune of cart/1 keeping the newest snapshot.
type savePruneStep struct {
	seq      uint64
	failSync bool
}

var savePruneWorkload = []savePruneStep{
	{seq: 1},
	{seq: 2},
	{}, // Prune
	{seq: 3, failSync: true},
	{}, // Prune
	{seq: 4},
	{seq: 5, failSync: true},
	{}, // Prune
}

// savePruneMode says how the save-and-prune workload prunes, and which
// crash states its check covers.
type savePruneMode struct {
	// otherStore: each Prune goes through a new Store over the directory
	// (another process beside the one saving, or this one reopened),
	// which knows of no failed directory fsync. Otherwise the Store that
	// saves prunes, and refuses once a directory fsync of it failed.
	otherStore bool
	// skipPruneSync: Prune's directory fsyncs do nothing and report
	// success (teeth for the fsync before the first removal).
	skipPruneSync bool
	// dropped: an injected directory fsync failure drops the pending
	// directory operations for good (vfs.DropOnSyncDirFailure), so every
	// crash state leaves them out.
	dropped bool
}

// runSavePrune runs savePruneWorkload over rec until a step fails other
// than by the injected directory fsync failure or, in the saving Store,
// the refusal to prune that follows it. It returns the newest seq whose
// Save was acknowledged.
func runSavePrune(t *testing.T, rec *reorderFS, failSync *bool, mode savePruneMode) (acked uint64, err error) {
	t.Helper()
	s := newStore(t, rec)
	syncFailed := false
	for _, st := range savePruneWorkload {
		if st.seq == 0 {
			ps := s
			if mode.otherStore {
				ps = newStore(t, rec)
			}
			rec.setSkipSync(mode.skipPruneSync)
			_, err := ps.Prune(t.Context(), "cart/1", PrunePolicy{KeepLast: 1})
			rec.setSkipSync(false)
			switch {
			case err == nil:
			case syncFailed && !mode.otherStore && errors.Is(err, ErrDirSyncFailed) && !errors.Is(err, vfs.ErrCrashed):
			default:
				return acked, err
			}
			continue
		}
		*failSync = st.failSync
		_, err := s.Save(t.Context(), meta("cart/1", st.seq), stateOf("cart/1", st.seq))
		*failSync = false
		switch {
		case err == nil:
			acked = st.seq
		case st.failSync && errors.Is(err, syscall.EIO):
			syncFailed = true
		default:
			return acked, err
		}
	}
	return acked, nil
}

// newSavePruneFS returns a reorderFS over a Faulty over mem whose
// directory fsyncs fail while *failSync is set, dropping the pending
// directory operations for good if dropped is set.
func newSavePruneFS(mem *vfs.Mem, dropped bool) (*reorderFS, *bool) {
	failSync := new(bool)
	inject := func(op vfs.Op) error {
		if op.Kind == vfs.OpSyncDir && *failSync {
			return vfs.EIO(".")
		}
		return nil
	}
	if dropped {
		inject = vfs.DropOnSyncDirFailure(mem, inject)
	}
	return &reorderFS{FS: vfs.NewFaulty(mem, inject), mem: mem}, failSync
}

// crashSavePrune runs the save-and-prune workload with a power loss at
// mutating op k (of ops) and checks, under every crash model and under
// removalsFirst (with mode.dropped, where the failed directory fsyncs
// dropped their pending operations for good), that once a Save was acknowledged a
// whole snapshot of cart/1 survives, at least as new as the newest
// acknowledged Save, and that every listed snapshot verifies. Violations
// go to errorf.
func crashSavePrune(t *testing.T, k, ops int, base uint64, mode savePruneMode, errorf func(string, ...any)) {
	t.Helper()
	mem := vfs.NewMem()
	mem.CrashAt(k)
	rec, failSync := newSavePruneFS(mem, mode.dropped)
	acked, err := runSavePrune(t, rec, failSync, mode)
	// A power loss may surface as no error: at the removal of a
	// temporary a Save no longer has (logged, not returned), followed
	// only by Prunes that refuse before any I/O.
	switch {
	case k < ops && !mem.Crashed():
		errorf("op %d: the power loss did not happen (workload error: %v)", k, err)
		return
	case err != nil && !errors.Is(err, vfs.ErrCrashed):
		errorf("op %d: workload: %v", k, err)
		return
	}
	type state struct {
		model string
		after *vfs.Mem
	}
	states := []state{{"removalsFirst", rec.removalsFirst()}}
	for _, model := range vfs.CrashModels() {
		states = append(states, state{model.String(), mem.CrashClone(model, rand.New(rand.NewPCG(base, uint64(k)<<8|uint64(model))))})
	}
	for _, st := range states {
		model := st.model
		ro := newStore(t, vfs.ReadOnly(st.after))
		list, err := ro.List("cart/1")
		if err != nil {
			errorf("op %d, %s: List: %v", k, model, err)
			continue
		}
		for _, m := range list {
			if _, err := ro.Verify(t.Context(), m.File); err != nil {
				errorf("op %d, %s: listed snapshot %v does not verify: %v", k, model, m, err)
			}
		}
		m, state, err := loadNewest(t.Context(), ro, "cart/1", math.MaxUint64)
		if acked == 0 && errors.Is(err, ErrNotFound) {
			continue // nothing acknowledged yet
		}
		if err != nil {
			errorf("op %d, %s: no snapshot of cart/1 survives (newest acknowledged Save: seq %d): %v", k, model, acked, err)
			continue
		}
		if m.Seq < acked {
			errorf("op %d, %s: newest snapshot of cart/1 is at seq %d, but seq %d was acknowledged", k, model, m.Seq, acked)
		}
		if !bytes.Equal(state, stateOf("cart/1", m.Seq)) {
			errorf("op %d, %s: the snapshot at seq %d holds a wrong state", k, model, m.Seq)
		}
	}
}

// savePruneOps returns the number of mutating operations of the
// save-and-prune workload.
func savePruneOps(t *testing.T, mode savePruneMode) int {
	t.Helper()
	mem := vfs.NewMem()
	rec, failSync := newSavePruneFS(mem, mode.dropped)
	if _, err := runSavePrune(t, rec, failSync, mode); err != nil {
		t.Fatal(err)
	}
	return mem.Ops()
}

// TestCrashSavePrune loses power at every mutating operation of Saves
// (some whose directory fsync fails) and Prunes, under every crash model
// and under one that persists removals before the unsynced directory
// operations that preceded them: a whole snapshot of the subject always
// survives. Pruned by another Store, which knows of no failure, that
// rests on Prune's directory fsync before its first removal; pruned by
// the saving Store, it holds also where a failed directory fsync dropped
// its operations for good (a later fsync succeeding without writing
// them), because that Store then refuses to prune (ErrDirSyncFailed).
func TestCrashSavePrune(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode savePruneMode
	}{
		{"other store", savePruneMode{otherStore: true}},
		{"saving store", savePruneMode{}},
		{"saving store, failed fsync drops for good", savePruneMode{dropped: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := seed(t)
			ops := savePruneOps(t, tc.mode)
			for k := range ops + 1 {
				crashSavePrune(t, k, ops, base, tc.mode, t.Errorf)
			}
		})
	}
}

// TestCrashSavePruneHasTeeth: the save-and-prune crash loop finds a power
// loss that leaves no snapshot with Prune's directory fsyncs skipped, and,
// under the model where a failed directory fsync drops its operations for
// good, with Prunes by a Store that does not know of the failure (what
// every Store was before it remembered one).
func TestCrashSavePruneHasTeeth(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode savePruneMode
	}{
		{"fsync before removal skipped", savePruneMode{otherStore: true, skipPruneSync: true}},
		{"failure forgotten", savePruneMode{otherStore: true, dropped: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := seed(t)
			ops := savePruneOps(t, tc.mode)
			var bad []string
			errorf := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
			for k := range ops + 1 {
				crashSavePrune(t, k, ops, base, tc.mode, errorf)
			}
			if len(bad) == 0 {
				t.Fatal("the crash loop found no violation: it has no teeth")
			}
			t.Logf("%d violations, e.g. %s", len(bad), bad[0])
		})
	}
}

// TestRemoveAfterFailedSaveDirSync: a caller that saves a snapshot (the
// projection runner's rebuild marker, a newer snapshot) and removes
// another on its word, when that Save reported a failed directory fsync
// or ErrExists, must not lose both to a power loss just after the
// removal: Remove makes the directory durable first. If that fsync fails,
// it removes nothing. (The Remove runs in another Store: the saving one
// refuses, TestDirSyncFailedIsSticky.)
func TestRemoveAfterFailedSaveDirSync(t *testing.T) {
	mem := vfs.NewMem()
	old := mustSave(t, newStore(t, mem), "cart/1", 1)

	rec := &reorderFS{FS: vfs.NewFaulty(mem, vfs.FailKind(vfs.OpSyncDir, 0, vfs.EIO("."))), mem: mem}
	if _, err := newStore(t, rec).Save(t.Context(), meta("cart/1", 2), stateOf("cart/1", 2)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Save with a failing directory fsync = %v, want EIO", err)
	}
	var crashes []*vfs.Mem
	rec.afterRemove = func() { crashes = append(crashes, rec.removalsFirst()) }
	// Another Store (another process, or this one reopened), which does
	// not know that the Save's fsync failed.
	if err := newStore(t, rec).Remove(t.Context(), old); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if len(crashes) != 1 {
		t.Fatalf("%d removals, want 1", len(crashes))
	}
	ro := newStore(t, vfs.ReadOnly(crashes[0]))
	if m, _, err := loadNewest(t.Context(), ro, "cart/1", math.MaxUint64); err != nil || m.Seq != 2 {
		t.Errorf("power loss just after the Remove: newest snapshot of cart/1 = %v, %v; want seq 2", m, err)
	}

	// A failing directory fsync: nothing removed.
	mem = vfs.NewMem()
	old = mustSave(t, newStore(t, mem), "cart/1", 1)
	s := newStore(t, vfs.NewFaulty(mem, vfs.FailKind(vfs.OpSyncDir, 0, vfs.EIO("."))))
	if err := s.Remove(t.Context(), old); !errors.Is(err, syscall.EIO) {
		t.Errorf("Remove with a failing directory fsync = %v, want EIO", err)
	}
	if _, err := mem.ReadFile(old.File); err != nil {
		t.Errorf("Remove removed %s although the directory fsync before it failed: %v", old.File, err)
	}
}
