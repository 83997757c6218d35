package evlog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// TestCompactFaultLoop injects an I/O error (EIO, ENOSPC, a short write
// out of space) at every mutating operation of a compaction, once per
// run. Whatever failed, the log reads as before in the same process, and
// after a restart or a power loss there; and running Compact again, in
// the same process or after reopening, completes the job (the contract of
// Compact: "running Compact again completes the job"), except that after a
// failed directory fsync Compact refuses in the same process
// (ErrDirSyncFailed) and completes the job after reopening.
func TestCompactFaultLoop(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	opts := crashOpts(SyncAlways)
	base := vfs.NewMem()
	l := openMem(t, base, opts)
	if err := runWorkload(ctx, l, genWorkload(22, 120)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	c := compactCrashCase{base: base, opts: opts, target: 1 << 20, segmentsAfter: 2}
	copts := CompactOptions{TargetSize: c.target, Compress: true}
	l = openMem(t, base.Clone(), opts)
	want := observe(t, l)
	l.Close()

	// Count the compaction's mutating operations.
	probe := vfs.NewFaulty(base.Clone(), nil)
	l = openMem(t, probe, opts)
	ops0 := probe.Ops()
	if _, err := l.Compact(ctx, copts); err != nil {
		t.Fatal(err)
	}
	total := probe.Ops() - ops0
	l.Close()

	for _, tc := range []struct {
		name string
		err  func(string) error
	}{
		{"EIO", vfs.EIO},
		{"ENOSPC", vfs.ENOSPC},
		{"short write ENOSPC", func(n string) error { return vfs.ShortWrite(7, vfs.ENOSPC(n)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bad []string
			for k := range total {
				mem := base.Clone()
				var at atomic.Int64
				at.Store(-1)
				var injected atomic.Pointer[vfs.Op]
				fsys := vfs.NewFaulty(mem, func(op vfs.Op) error {
					if op.Index >= 0 && int64(op.Index) == at.Load() {
						injected.Store(&op)
						return tc.err(op.Name)
					}
					return nil
				})
				l := openMem(t, fsys, opts)
				at.Store(int64(fsys.Ops() + k))
				_, cerr := l.Compact(ctx, copts)
				op := "none"
				if p := injected.Load(); p != nil {
					op = p.String()
				}
				report := func(format string, args ...any) {
					bad = append(bad, fmt.Sprintf("k=%d/%d (%s; Compact: %v): %s", k, total, op, cerr, fmt.Sprintf(format, args...)))
				}
				if d := cmp.Diff(want, observe(t, l)); d != "" {
					report("reads differ after the failed compaction (-want +got):\n%s", d)
				}
				// What a restart and a power loss now would find.
				states := []struct {
					name string
					fs   *vfs.Mem
				}{{"restart", mem.Clone()}}
				for _, model := range vfs.CrashModels() {
					states = append(states, struct {
						name string
						fs   *vfs.Mem
					}{model.String(), mem.CrashClone(model, rand.New(rand.NewPCG(uint64(k), uint64(model))))})
				}
				// Compact again in the same process; after a failed
				// directory fsync it must refuse (nothing proves a later
				// one: ErrDirSyncFailed), and the reopened log redoes it.
				rep, err := l.Compact(ctx, copts)
				if p := injected.Load(); p != nil && p.Kind == vfs.OpSyncDir {
					if !errors.Is(err, ErrDirSyncFailed) {
						report("compacting again in the same process after a failed directory fsync: %v, want an error matching ErrDirSyncFailed", err)
					} else if d := cmp.Diff(want, observe(t, l)); d != "" {
						report("reads differ after the refused compaction (-want +got):\n%s", d)
					}
				} else if err != nil || rep.SegmentsAfter != c.segmentsAfter {
					report("compacting again in the same process: %d segments after, %v", rep.SegmentsAfter, err)
				} else if d := cmp.Diff(want, observe(t, l)); d != "" {
					report("reads differ after compacting again (-want +got):\n%s", d)
				}
				l.Close()
				for _, s := range states {
					if msg := checkCompactRecovered(t, s.fs, s.fs, c, want); msg != "" {
						report("%s: %s", s.name, msg)
					}
				}
			}
			t.Logf("injected %s at each of %d ops", tc.name, total)
			for _, b := range bad[:min(len(bad), 10)] {
				t.Error(b)
			}
			if len(bad) > 10 {
				t.Errorf("… and %d more violations", len(bad)-10)
			}
		})
	}
}
