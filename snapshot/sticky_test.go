package snapshot

import (
	"errors"
	"math"
	"syscall"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/google/go-cmp/cmp"
)

// TestPruneAfterDroppedDirSync: on Linux a directory fsync that fails may
// drop the directory's pending operations for good (fsyncgate), and a
// later directory fsync then succeeds without writing them. A Save whose
// directory fsync fails, then a Prune of the same Store whose own fsync
// would succeed, must not remove the older snapshot on the word of the
// new one: a power loss after the Prune would leave neither. The Store
// remembers the failure and refuses (ErrDirSyncFailed).
func TestPruneAfterDroppedDirSync(t *testing.T) {
	mem := vfs.NewMem()
	mustSave(t, newStore(t, mem), "cart/1", 1)

	s := newStore(t, vfs.NewFaulty(mem, vfs.DropOnSyncDirFailure(mem, vfs.FailKind(vfs.OpSyncDir, 0, vfs.EIO(".")))))
	_, err := s.Save(t.Context(), meta("cart/1", 2), stateOf("cart/1", 2))
	if !errors.Is(err, syscall.EIO) || !errors.Is(err, ErrDirSyncFailed) {
		t.Fatalf("Save with a failing directory fsync = %v, want an error matching EIO and ErrDirSyncFailed", err)
	}
	removed, err := s.Prune(t.Context(), "cart/1", PrunePolicy{KeepLast: 1})
	if !errors.Is(err, ErrDirSyncFailed) || !errors.Is(err, syscall.EIO) {
		t.Errorf("Prune after a failed directory fsync = %v, want an error matching ErrDirSyncFailed and the failure's EIO", err)
	}
	if len(removed) != 0 {
		t.Errorf("Prune after a failed directory fsync removed %v, want nothing", removed)
	}

	for _, model := range vfs.CrashModels() {
		ro := newStore(t, vfs.ReadOnly(mem.CrashClone(model, nil)))
		if m, state, err := loadNewest(t.Context(), ro, "cart/1", math.MaxUint64); err != nil {
			t.Errorf("power loss (%v) after the Prune: no snapshot of cart/1 survives: %v", model, err)
		} else if m.Seq != 1 || string(state) != string(stateOf("cart/1", 1)) {
			t.Errorf("power loss (%v) after the Prune: newest snapshot of cart/1 is %v, want the one at seq 1 (seq 2's entry was dropped)", model, m)
		}
	}
}

// TestDirSyncFailedIsSticky: once any directory fsync of a Store fails
// (Save's, Prune's, Remove's, CleanTemps'), every later Prune and Remove
// of that Store refuses with ErrDirSyncFailed and removes nothing, even
// though the directory fsyncs succeed again; Save goes on, and a Store
// opened afresh does not know of the failure.
func TestDirSyncFailedIsSticky(t *testing.T) {
	tests := []struct {
		name string
		fail func(t *testing.T, s *Store, mem *vfs.Mem) error // makes the one failing directory fsync
	}{
		{"Save", func(t *testing.T, s *Store, _ *vfs.Mem) error {
			_, err := s.Save(t.Context(), meta("cart/1", 4), stateOf("cart/1", 4))
			return err
		}},
		{"Prune", func(t *testing.T, s *Store, _ *vfs.Mem) error {
			_, err := s.Prune(t.Context(), "cart/1", PrunePolicy{KeepLast: 1})
			return err
		}},
		{"Remove", func(t *testing.T, s *Store, _ *vfs.Mem) error {
			return s.Remove(t.Context(), Meta{Name: "cart/1", Seq: 1})
		}},
		{"CleanTemps", func(t *testing.T, s *Store, mem *vfs.Mem) error {
			if err := mem.WriteFile(FormatFileName("cart/1", 9)+tempExt, []byte("left over")); err != nil {
				t.Fatal(err)
			}
			return s.CleanTemps()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			saveAll(t, newStore(t, mem), map[string][]uint64{"cart/1": {1, 2, 3}})
			s := newStore(t, vfs.NewFaulty(mem, vfs.FailKind(vfs.OpSyncDir, 0, vfs.EIO("."))))
			if err := tc.fail(t, s, mem); !errors.Is(err, ErrDirSyncFailed) || !errors.Is(err, syscall.EIO) {
				t.Fatalf("%s with a failing directory fsync = %v, want an error matching ErrDirSyncFailed and EIO", tc.name, err)
			}
			before := dirState(t, mem)

			removed, err := s.Prune(t.Context(), "cart/1", PrunePolicy{KeepLast: 1})
			if !errors.Is(err, ErrDirSyncFailed) || len(removed) != 0 {
				t.Errorf("Prune after the failure = %v, %v; want nothing removed and an error matching ErrDirSyncFailed", removed, err)
			}
			if err := s.Remove(t.Context(), Meta{Name: "cart/1", Seq: 2}); !errors.Is(err, ErrDirSyncFailed) {
				t.Errorf("Remove after the failure = %v, want an error matching ErrDirSyncFailed", err)
			}
			if diff := cmp.Diff(before, dirState(t, mem)); diff != "" {
				t.Errorf("Prune or Remove changed the directory after the failure (-before +after):\n%s", diff)
			}

			// Save goes on, and its nil is durable.
			m, err := s.Save(t.Context(), meta("cart/1", 5), stateOf("cart/1", 5))
			if err != nil {
				t.Fatalf("Save after the failure: %v", err)
			}
			after := newStore(t, vfs.ReadOnly(mem.CrashClone(vfs.DropUnsynced, nil)))
			if _, err := after.Load(t.Context(), m); err != nil {
				t.Errorf("the snapshot a Save acknowledged after the failure does not survive a power loss: %v", err)
			}

			// Another Store knows nothing of it (see ErrDirSyncFailed:
			// only a restart of the machine proves what is on disk).
			if _, err := newStore(t, mem).Prune(t.Context(), "cart/1", PrunePolicy{KeepLast: 1}); err != nil {
				t.Errorf("Prune of a Store opened afresh: %v", err)
			}
		})
	}
}

// TestDirSyncFailedOption: a Store whose Options.DirSyncFailed reports a
// failed directory fsync elsewhere in its directory (the log's writer,
// compaction, subscriptions share it) refuses Prune and Remove, before
// reading anything and removing nothing, with an error matching
// ErrDirSyncFailed and the reported error; while it reports none, they
// work, and Save is not affected either way.
func TestDirSyncFailedOption(t *testing.T) {
	elsewhere := errors.New("the log's directory fsync failed")
	var failed error
	mem := vfs.NewMem()
	s := newStore(t, mem, func(o *Options) { o.DirSyncFailed = func() error { return failed } })
	for seq := range uint64(3) {
		mustSave(t, s, "cart/1", seq+1)
	}
	if removed, err := s.Prune(t.Context(), "cart/1", PrunePolicy{KeepLast: 2}); err != nil || len(removed) != 1 {
		t.Fatalf("Prune before any failure = %v, %v; want one snapshot removed", removed, err)
	}

	failed = elsewhere
	before, err := mem.List()
	if err != nil {
		t.Fatal(err)
	}
	if removed, err := s.Prune(t.Context(), "cart/1", PrunePolicy{KeepLast: 1}); !errors.Is(err, ErrDirSyncFailed) || !errors.Is(err, elsewhere) || len(removed) != 0 {
		t.Errorf("Prune after a failure elsewhere = %v, %v; want nothing removed and an error matching ErrDirSyncFailed and the reported one", removed, err)
	}
	if err := s.Remove(t.Context(), meta("cart/1", 2)); !errors.Is(err, ErrDirSyncFailed) || !errors.Is(err, elsewhere) {
		t.Errorf("Remove after a failure elsewhere = %v, want an error matching ErrDirSyncFailed and the reported one", err)
	}
	after, err := mem.List()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(before, after); d != "" {
		t.Errorf("the refusals changed the directory (-before +after):\n%s", d)
	}
	mustSave(t, s, "cart/1", 4)
}
