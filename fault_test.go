package evlog

import (
	"errors"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// TestFaultLoop injects an I/O error at every mutating operation of a
// workload, once per run: EIO (fail-stop: after it no append may succeed
// until the log is reopened) and ENOSPC (the batch fails; the log stays
// usable when nothing was left half-written, else it fail-stops too). After
// each run the log is closed and reopened, as is (a process restart) and
// after a power loss, and must hold every acknowledged batch.
func TestFaultLoop(t *testing.T) {
	const seed, nbatches = 3, 120
	ctx := t.Context()
	probe := vfs.NewMem()
	l := openMem(t, probe, crashOpts(SyncAlways))
	if err := runWorkload(ctx, l, genWorkload(seed, nbatches)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	total := probe.Ops()
	for _, tc := range []struct {
		name string
		err  func(string) error
	}{
		{"EIO", vfs.EIO},
		{"ENOSPC", vfs.ENOSPC},
		{"short write ENOSPC", func(n string) error { return vfs.ShortWrite(7, vfs.ENOSPC(n)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			soft := 0
			for k := range total {
				mem := vfs.NewMem()
				fsys := vfs.NewFaulty(mem, vfs.FailAt(k, tc.err("injected")))
				work := genWorkload(seed, nbatches)
				l, err := openFS(fsys, crashOpts(SyncAlways), false)
				if err != nil {
					continue // failed during creation: nothing was acknowledged
				}
				failedAt, fatal := -1, false
				for bi, b := range work {
					pos, err := l.AppendBatch(ctx, b.reqs)
					if err == nil {
						if fatal {
							t.Fatalf("k=%d: batch %d acknowledged after the writer failed at batch %d: it must fail-stop", k, bi, failedAt)
						}
						b.acked, b.pos = true, pos
						continue
					}
					if failedAt < 0 {
						failedAt = bi
						if !errors.Is(err, ErrWriterFailed) && !errors.Is(err, syscall.ENOSPC) {
							t.Fatalf("k=%d: unexpected error %v", k, err)
						}
						if fatal = errors.Is(err, ErrWriterFailed); !fatal {
							soft++
						}
					} else if fatal && !errors.Is(err, ErrWriterFailed) || !errors.Is(err, ErrWriterFailed) && !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("k=%d: after the first failure, got %v", k, err)
					}
				}
				l.Close()
				if msg := checkRecovered(ctx, mem.Clone(), crashOpts(SyncAlways), work); msg != "" {
					t.Errorf("k=%d restart: %s", k, msg)
				}
				rng := rand.New(rand.NewPCG(seed, uint64(k)))
				if msg := checkRecovered(ctx, mem.CrashClone(vfs.Garbage, rng), crashOpts(SyncAlways), work); msg != "" {
					t.Errorf("k=%d power loss: %s", k, msg)
				}
			}
			t.Logf("%d ops; %d failures affected only their batch", total, soft)
			if tc.name != "EIO" && soft == 0 {
				t.Error("ENOSPC never failed just its batch: appends never resumed after freeing space")
			}
		})
	}
}
