package evlog

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

// dropFS is a log directory over a Mem (mem) whose next directory fsync
// can be made to fail with EIO (failNextSyncDir), dropping the directory
// operations pending then for good, as Linux may (fsyncgate; see
// vfs.Mem.DropDirOps): every crash state of mem leaves them out. It also
// calls a hook with every name created by a Create or a rename.
type dropFS struct {
	vfs.FS   // a Faulty over mem
	mem      *vfs.Mem
	failNext atomic.Bool // the next SyncDir fails with EIO, dropping what is pending
	mu       sync.Mutex
	// hook, if set, is called (outside mu) with every name created by a
	// Create or a rename, after it succeeded.
	hook func(name string)
}

// newDropFS returns a dropFS over mem.
func newDropFS(mem *vfs.Mem) *dropFS {
	d := &dropFS{mem: mem}
	d.FS = vfs.NewFaulty(mem, vfs.DropOnSyncDirFailure(mem, func(op vfs.Op) error {
		if op.Kind == vfs.OpSyncDir && d.failNext.CompareAndSwap(true, false) {
			return &fs.PathError{Op: "fsync", Path: ".", Err: syscall.EIO}
		}
		return nil
	}))
	return d
}

func (d *dropFS) created(name string) {
	d.mu.Lock()
	hook := d.hook
	d.mu.Unlock()
	if hook != nil {
		hook(name)
	}
}

func (d *dropFS) Create(name string) (vfs.File, error) {
	f, err := d.FS.Create(name)
	if err == nil {
		d.created(name)
	}
	return f, err
}

func (d *dropFS) Rename(oldname, newname string) error {
	if err := d.FS.Rename(oldname, newname); err != nil {
		return err
	}
	d.created(newname)
	return nil
}

func (d *dropFS) RenameNoReplace(oldname, newname string) error {
	if err := d.FS.RenameNoReplace(oldname, newname); err != nil {
		return err
	}
	d.created(newname)
	return nil
}

// failNextSyncDir arms the failure of the next SyncDir.
func (d *dropFS) failNextSyncDir() { d.failNext.Store(true) }

// setHook sets the hook (nil: none).
func (d *dropFS) setHook(hook func(name string)) {
	d.mu.Lock()
	d.hook = hook
	d.mu.Unlock()
}

// everyCrash returns what survives a power loss of mem now under every
// crash model (vfs.CrashModels), by model name.
func everyCrash(mem *vfs.Mem) map[string]*vfs.Mem {
	out := map[string]*vfs.Mem{}
	for i, model := range vfs.CrashModels() {
		out[model.String()] = mem.CrashClone(model, rand.New(rand.NewPCG(uint64(i), 7)))
	}
	return out
}

// isSegmentName reports whether name is a segment's (not a temporary's).
func isSegmentName(name string) bool {
	_, _, ok := segment.ParseFileName(name)
	return ok
}

// openDrop opens a writer over a dropFS over a new Mem, with tiny
// segments, and its snapshot store.
func openDrop(t *testing.T) (*Log, *dropFS, *vfs.Mem, *snapshot.Store) {
	t.Helper()
	mem := vfs.NewMem()
	d := newDropFS(mem)
	l := openMem(t, d, crashOpts(SyncAlways))
	t.Cleanup(func() { l.Close() })
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	return l, d, mem, store
}

// TestRollAfterDroppedDirSync: the log's segments and snapshots share one
// directory. A snapshot Save whose directory fsync fails while a roll's
// new segment is created but not yet made durable by the roll's own
// directory fsync may drop that segment's entry for good; the roll's
// fsync then succeeds without writing it. The writer must not acknowledge
// appends in that segment: they would vanish at a power loss. It fails
// (ErrWriterFailed, matching ErrDirSyncFailed and the cause) instead.
func TestRollAfterDroppedDirSync(t *testing.T) {
	ctx := t.Context()
	l, d, mem, store := openDrop(t)
	work := genWorkload(5, 80)
	for _, b := range work[:2] {
		pos, err := l.AppendBatch(ctx, b.reqs)
		if err != nil {
			t.Fatal(err)
		}
		b.acked, b.pos = true, pos
	}
	// Every event so far is served after a power loss, so the Save in
	// the hook needs nothing of the writer (which runs the hook).
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var fired atomic.Bool
	var saveErr error
	d.setHook(func(name string) {
		if !isSegmentName(name) || fired.Swap(true) {
			return
		}
		// The roll's new segment is renamed into place; before the
		// roll fsyncs the directory, the snapshot store's fsync fails.
		d.failNextSyncDir()
		_, saveErr = store.Save(ctx, snapshot.Meta{Name: "cart", Seq: 1, Time: t0}, []byte("state"))
	})
	firedAt := -1
	for bi, b := range work[2:] {
		pos, err := l.AppendBatch(ctx, b.reqs)
		if firedAt < 0 && fired.Load() {
			firedAt = bi
		}
		if firedAt < 0 {
			if err != nil {
				t.Fatalf("batch %d before the roll: %v", bi, err)
			}
			b.acked, b.pos = true, pos
			continue
		}
		if err == nil {
			b.acked, b.pos = true, pos
			t.Errorf("batch %d acknowledged after the roll during which a directory fsync failed (batch %d): the writer must stop", bi, firedAt)
			break
		}
		if !errors.Is(err, ErrWriterFailed) || !errors.Is(err, ErrDirSyncFailed) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("batch %d after the failed directory fsync: %v, want an error matching ErrWriterFailed, ErrDirSyncFailed and EIO", bi, err)
		}
	}
	if firedAt < 0 {
		t.Fatal("the workload never rolled")
	}
	if !errors.Is(saveErr, ErrDirSyncFailed) || !errors.Is(saveErr, syscall.EIO) {
		t.Errorf("Save with a failing directory fsync = %v, want an error matching ErrDirSyncFailed and EIO", saveErr)
	}
	for model, after := range everyCrash(mem) {
		if msg := checkRecovered(ctx, after, crashOpts(SyncAlways), work); msg != "" {
			t.Errorf("power loss (%s) after the failed directory fsync: %s", model, msg)
		}
	}
}

// TestCompactAfterDroppedDirSync: a compaction renames its output into
// place and fsyncs the directory before removing its inputs. If another
// directory fsync of the log directory (here a snapshot Save's) fails in
// between, the output's entry may be dropped for good and the
// compaction's own fsync succeed without it: removing the inputs then
// loses their events at a power loss. Compact must keep its inputs and
// fail with ErrDirSyncFailed.
func TestCompactAfterDroppedDirSync(t *testing.T) {
	ctx := t.Context()
	l, d, mem, store := openDrop(t)
	work := genWorkload(22, 120)
	if err := runWorkload(ctx, l, work); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var fired atomic.Bool
	var saveErr error
	d.setHook(func(name string) {
		if !isSegmentName(name) || fired.Swap(true) {
			return
		}
		d.failNextSyncDir()
		_, saveErr = store.Save(ctx, snapshot.Meta{Name: "cart", Seq: 1, Time: t0}, []byte("state"))
	})
	_, err := l.Compact(ctx, CompactOptions{TargetSize: 1 << 20, Compress: true})
	if !fired.Load() {
		t.Fatalf("Compact renamed no output into place (Compact: %v)", err)
	}
	if !errors.Is(saveErr, ErrDirSyncFailed) {
		t.Errorf("Save with a failing directory fsync = %v, want an error matching ErrDirSyncFailed", saveErr)
	}
	if !errors.Is(err, ErrDirSyncFailed) || !errors.Is(err, syscall.EIO) {
		t.Errorf("Compact across a failed directory fsync = %v, want an error matching ErrDirSyncFailed and EIO", err)
	}
	for model, after := range everyCrash(mem) {
		if msg := checkRecovered(ctx, after, crashOpts(SyncAlways), work); msg != "" {
			t.Errorf("power loss (%s) after the compaction: %s", model, msg)
		}
	}
}

// TestPruneAfterLogDroppedDirSync: the other way round. A directory fsync
// of the log (here a subscription Ack's) fails while a snapshot Save's
// new file is renamed into place but not yet fsynced; the Save's own
// fsync would succeed without it. The log's snapshot store must then
// neither report the Save durable nor Prune the older snapshot on its
// word: a power loss would leave neither.
func TestPruneAfterLogDroppedDirSync(t *testing.T) {
	ctx := t.Context()
	l, d, mem, store := openDrop(t)
	appendN(t, l, "cart", 3)
	if _, err := store.Save(ctx, snapshot.Meta{Name: "cart", Seq: 1, Time: t0}, []byte("one")); err != nil {
		t.Fatal(err)
	}
	sub, err := l.Subscription("sub", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var fired atomic.Bool
	var ackErr error
	d.setHook(func(name string) {
		if _, seq, ok := snapshot.ParseFileName(name); !ok || seq != 2 || fired.Swap(true) {
			return
		}
		d.failNextSyncDir()
		ackErr = sub.Ack(ctx, 2)
	})
	_, saveErr := store.Save(ctx, snapshot.Meta{Name: "cart", Seq: 2, Time: t0}, []byte("two"))
	if !fired.Load() {
		t.Fatalf("the Save renamed nothing into place (Save: %v)", saveErr)
	}
	if !errors.Is(ackErr, ErrDirSyncFailed) || !errors.Is(ackErr, syscall.EIO) {
		t.Errorf("Ack with a failing directory fsync = %v, want an error matching ErrDirSyncFailed and EIO", ackErr)
	}
	if !errors.Is(saveErr, ErrDirSyncFailed) || !errors.Is(saveErr, syscall.EIO) {
		t.Errorf("Save after the log's directory fsync failed = %v, want an error matching ErrDirSyncFailed and EIO", saveErr)
	}
	removed, err := store.Prune(ctx, "cart", snapshot.PrunePolicy{KeepLast: 1})
	if !errors.Is(err, ErrDirSyncFailed) || len(removed) > 0 {
		t.Errorf("Prune after the log's directory fsync failed = %v (removed %v), want an error matching ErrDirSyncFailed and nothing removed", err, removed)
	}
	for model, after := range everyCrash(mem) {
		ro, err := snapshot.Open(vfs.ReadOnly(after), snapshot.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if metas, err := ro.List("cart"); err != nil || len(metas) == 0 {
			t.Errorf("power loss (%s) after the Prune: no snapshot of cart survives (%v, %v)", model, metas, err)
		}
	}
}

// TestDirSyncFailureStopsTheLog: once any directory fsync of the log
// directory failed in this process, whoever made it, everything that
// relies on a later one refuses: the writer (appends and Sync fail with
// ErrWriterFailed), Compact, Subscription.Ack, and the log's snapshot
// store's Save, Prune and Remove. Each refusal matches ErrDirSyncFailed
// and the original failure (EIO).
func TestDirSyncFailureStopsTheLog(t *testing.T) {
	failBy := []struct {
		name string
		fail func(t *testing.T, l *Log, store *snapshot.Store, sub *Subscription) error
	}{
		{"snapshot Save", func(t *testing.T, _ *Log, store *snapshot.Store, _ *Subscription) error {
			_, err := store.Save(t.Context(), snapshot.Meta{Name: "cart", Seq: 2, Time: t0}, []byte("two"))
			return err
		}},
		{"subscription Ack", func(t *testing.T, _ *Log, _ *snapshot.Store, sub *Subscription) error {
			return sub.Ack(t.Context(), 1)
		}},
		{"DeleteSubscription", func(t *testing.T, l *Log, _ *snapshot.Store, _ *Subscription) error {
			return l.DeleteSubscription("old")
		}},
	}
	refusals := []struct {
		name string
		op   func(t *testing.T, l *Log, store *snapshot.Store, sub *Subscription) error
	}{
		{"Append", func(t *testing.T, l *Log, _ *snapshot.Store, _ *Subscription) error {
			_, err := l.Append(t.Context(), "cart", ExpectAny, Envelope{Type: "e"})
			if err != nil && !errors.Is(err, ErrWriterFailed) {
				t.Errorf("Append: %v does not match ErrWriterFailed", err)
			}
			return err
		}},
		{"Sync", func(t *testing.T, l *Log, _ *snapshot.Store, _ *Subscription) error {
			return l.Sync(t.Context())
		}},
		{"Compact", func(t *testing.T, l *Log, _ *snapshot.Store, _ *Subscription) error {
			_, err := l.Compact(t.Context(), CompactOptions{})
			return err
		}},
		{"Ack", func(t *testing.T, _ *Log, _ *snapshot.Store, sub *Subscription) error {
			return sub.Ack(t.Context(), 3)
		}},
		{"Save", func(t *testing.T, _ *Log, store *snapshot.Store, _ *Subscription) error {
			_, err := store.Save(t.Context(), snapshot.Meta{Name: "cart", Seq: 3, Time: t0}, []byte("three"))
			return err
		}},
		{"Prune", func(t *testing.T, _ *Log, store *snapshot.Store, _ *Subscription) error {
			_, err := store.Prune(t.Context(), "cart", snapshot.PrunePolicy{KeepLast: 1})
			return err
		}},
		{"Remove", func(t *testing.T, _ *Log, store *snapshot.Store, _ *Subscription) error {
			return store.Remove(t.Context(), snapshot.Meta{Name: "cart", Seq: 1})
		}},
	}
	for _, fb := range failBy {
		for _, rf := range refusals {
			t.Run(fb.name+"/"+rf.name, func(t *testing.T) {
				ctx := t.Context()
				l, d, _, store := openDrop(t)
				appendN(t, l, "cart", 3)
				if _, err := store.Save(ctx, snapshot.Meta{Name: "cart", Seq: 1, Time: t0}, []byte("one")); err != nil {
					t.Fatal(err)
				}
				old, err := l.Subscription("old", Filter{})
				if err != nil {
					t.Fatal(err)
				}
				if err := old.Ack(ctx, 1); err != nil {
					t.Fatal(err)
				}
				old.Close()
				sub, err := l.Subscription("sub", Filter{})
				if err != nil {
					t.Fatal(err)
				}
				defer sub.Close()
				names := func() []string {
					n, err := d.List()
					if err != nil {
						t.Fatal(err)
					}
					return n
				}
				d.failNextSyncDir()
				if err := fb.fail(t, l, store, sub); !errors.Is(err, ErrDirSyncFailed) || !errors.Is(err, syscall.EIO) {
					t.Fatalf("%s with a failing directory fsync = %v, want an error matching ErrDirSyncFailed and EIO", fb.name, err)
				}
				before := names()
				err = rf.op(t, l, store, sub)
				if !errors.Is(err, ErrDirSyncFailed) || !errors.Is(err, syscall.EIO) {
					t.Errorf("%s after a failed directory fsync by %s = %v, want an error matching ErrDirSyncFailed and EIO", rf.name, fb.name, err)
				}
				if rf.name == "Prune" || rf.name == "Remove" || rf.name == "Compact" {
					if got := names(); !slices.Equal(got, before) {
						t.Errorf("%s after a failed directory fsync changed the directory: %v, was %v", rf.name, got, before)
					}
				}
			})
		}
	}
}

// memOf returns the Mem a log's FS is (a read-only log's) or wraps (a
// writer's dirSyncFS).
func memOf(fsys vfs.FS) *vfs.Mem {
	if d, ok := fsys.(*dirSyncFS); ok {
		fsys = d.UnwrapFS()
	}
	return fsys.(*vfs.Mem)
}

// TestDirSyncFailureKeepsWrittenAppends: under SyncNever and SyncInterval
// an append is acknowledged once written; Close (and the interval's fsync)
// makes it durable. A directory fsync of the log directory that fails
// elsewhere (here a DeleteSubscription's) stops the writer, but the
// appends written before it are in the active segment, whose entry a
// directory fsync made durable before the failure: the writer must still
// fsync them when it stops (at the next request, or Close), not leave
// acknowledged appends to a power loss.
func TestDirSyncFailureKeepsWrittenAppends(t *testing.T) {
	for _, tc := range []struct {
		name string
		sync SyncMode
		// appendAfter: an append after the failure stops the writer
		// (refused) before Close does.
		appendAfter bool
	}{
		{"never/Close", SyncNever, false},
		{"never/append then Close", SyncNever, true},
		{"interval/Close", SyncInterval(time.Hour), false},
		{"interval/append then Close", SyncInterval(time.Hour), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			mem := vfs.NewMem()
			d := newDropFS(mem)
			opts := Options{Sync: tc.sync}
			l := openMem(t, d, opts)
			defer l.Close()
			old, err := l.Subscription("old", Filter{})
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, l, "cart", 2)
			if err := old.Ack(ctx, 1); err != nil { // durable through seq 2
				t.Fatal(err)
			}
			old.Close()
			appendN(t, l, "cart", 3) // acknowledged, not fsynced yet
			want := l.LastSeq()

			d.failNextSyncDir()
			if err := l.DeleteSubscription("old"); !errors.Is(err, ErrDirSyncFailed) || !errors.Is(err, syscall.EIO) {
				t.Fatalf("DeleteSubscription with a failing directory fsync = %v, want an error matching ErrDirSyncFailed and EIO", err)
			}
			if tc.appendAfter {
				if _, err := l.Append(ctx, "cart", ExpectAny, Envelope{Type: "e"}); !errors.Is(err, ErrDirSyncFailed) {
					t.Fatalf("Append after a failed directory fsync = %v, want an error matching ErrDirSyncFailed", err)
				}
			}
			if err := l.Close(); !errors.Is(err, ErrDirSyncFailed) {
				t.Errorf("Close after a failed directory fsync = %v, want an error matching ErrDirSyncFailed", err)
			}

			after := mem.CrashClone(vfs.DropUnsynced, nil)
			ro, err := openFS(vfs.ReadOnly(after), opts, true)
			if err != nil {
				t.Fatalf("open after a power loss: %v", err)
			}
			defer ro.Close()
			if got := ro.LastSeq(); got < want {
				t.Errorf("power loss after Close: the log ends at seq %d; appends up to %d were acknowledged, written before the directory fsync failed, in a segment whose entry was durable", got, want)
			}
		})
	}
}

// TestFirstDirSyncFailureMatchesErrDirSyncFailed: the call during which a
// directory fsync of the log directory fails returns an error matching
// ErrDirSyncFailed and the failure's cause, like every refusal after it,
// whichever entry point made the fsync.
func TestFirstDirSyncFailureMatchesErrDirSyncFailed(t *testing.T) {
	tests := []struct {
		name string
		// setup prepares l; fail then makes the one call whose directory
		// fsync fails.
		setup func(t *testing.T, l *Log, store *snapshot.Store)
		fail  func(t *testing.T, l *Log, store *snapshot.Store) error
	}{
		{"Compact", func(t *testing.T, l *Log, _ *snapshot.Store) {
			if err := runWorkload(t.Context(), l, genWorkload(22, 120)); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, l *Log, _ *snapshot.Store) error {
			_, err := l.Compact(t.Context(), CompactOptions{TargetSize: 1 << 20, Compress: true})
			return err
		}},
		{"Subscription.Ack", nil, func(t *testing.T, l *Log, _ *snapshot.Store) error {
			sub, err := l.Subscription("sub", Filter{})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			return sub.Ack(t.Context(), 1)
		}},
		{"DeleteSubscription", func(t *testing.T, l *Log, _ *snapshot.Store) {
			sub, err := l.Subscription("old", Filter{})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if err := sub.Ack(t.Context(), 1); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, l *Log, _ *snapshot.Store) error {
			return l.DeleteSubscription("old")
		}},
		{"snapshot Save", nil, func(t *testing.T, _ *Log, store *snapshot.Store) error {
			_, err := store.Save(t.Context(), snapshot.Meta{Name: "cart", Seq: 2, Time: t0}, []byte("two"))
			return err
		}},
		{"snapshot Prune", func(t *testing.T, _ *Log, store *snapshot.Store) {
			for seq := range uint64(2) {
				if _, err := store.Save(t.Context(), snapshot.Meta{Name: "cart", Seq: seq + 1, Time: t0}, []byte("state")); err != nil {
					t.Fatal(err)
				}
			}
		}, func(t *testing.T, _ *Log, store *snapshot.Store) error {
			_, err := store.Prune(t.Context(), "cart", snapshot.PrunePolicy{KeepLast: 1})
			return err
		}},
		{"snapshot Remove", func(t *testing.T, _ *Log, store *snapshot.Store) {
			if _, err := store.Save(t.Context(), snapshot.Meta{Name: "cart", Seq: 1, Time: t0}, []byte("one")); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, _ *Log, store *snapshot.Store) error {
			return store.Remove(t.Context(), snapshot.Meta{Name: "cart", Seq: 1})
		}},
		{"the writer's roll", nil, func(t *testing.T, l *Log, _ *snapshot.Store) error {
			// Append until the writer's own directory fsync (a roll's)
			// fails.
			for _, b := range genWorkload(5, 200) {
				if _, err := l.AppendBatch(t.Context(), b.reqs); err != nil {
					if !errors.Is(err, ErrWriterFailed) {
						t.Errorf("append error %v does not match ErrWriterFailed", err)
					}
					return err
				}
			}
			t.Fatal("200 batches never made the writer fsync the directory")
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, d, _, store := openDrop(t)
			appendN(t, l, "cart", 3)
			if tc.setup != nil {
				tc.setup(t, l, store)
			}
			d.failNextSyncDir()
			err := tc.fail(t, l, store)
			if d.failNext.Load() {
				t.Fatalf("%s made no directory fsync (error %v)", tc.name, err)
			}
			if !errors.Is(err, ErrDirSyncFailed) || !errors.Is(err, syscall.EIO) {
				t.Errorf("%s during which the directory fsync failed = %v, want an error matching ErrDirSyncFailed and EIO", tc.name, err)
			}
		})
	}
}
