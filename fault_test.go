package evlog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
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
			t.Parallel() // the three errors' loops are independent: use the second core
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

// TestFaultENOSPCAfterRoll: running out of space on the first write into a
// segment just started by a roll fails only that batch (issue 9, item 5).
// Two appends are queued together: the first rolls to a new segment and is
// staged there, the second makes the writer flush the first, whose write
// fails with ENOSPC. The writer must not then "roll" the empty new segment
// (which would create the next one under the same name, replacing the
// active file): the second append goes into the new segment, and the log
// stays usable and recovers every acknowledged batch.
func TestFaultENOSPCAfterRoll(t *testing.T) {
	for _, tc := range []struct {
		name string
		sync SyncMode
		err  error
	}{
		{"always ENOSPC", SyncAlways, vfs.ENOSPC("injected")},
		{"always short write ENOSPC", SyncAlways, vfs.ShortWrite(7, vfs.ENOSPC("injected"))},
		{"never ENOSPC", SyncNever, vfs.ENOSPC("injected")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				mem := vfs.NewMem()
				var (
					mu     sync.Mutex
					gate   = newWriteGate()
					failOn string // the second write to this file (the first after its header) fails with tc.err
					writes int
					failed bool
				)
				fsys := vfs.NewFaulty(mem, func(op vfs.Op) error {
					if !isSegmentWrite(op) {
						return nil
					}
					mu.Lock()
					if op.Name == failOn {
						writes++
					}
					fail := op.Name == failOn && writes == 2 // after Create's header
					if fail {
						failed = true
					}
					mu.Unlock()
					gate.Hold(op)
					if fail {
						return tc.err
					}
					return nil
				})
				opts := Options{SegmentSize: MinSegmentSize, Sync: tc.sync, Clock: fakeClock(t0, time.Millisecond)}
				l := openMem(t, fsys, opts)
				defer l.Close()
				// Two big events do not fit in one segment.
				big := func(n int) Envelope { return Envelope{Type: "big", Data: bytes.Repeat([]byte{byte(n)}, 2100)} }
				var acked []uint64
				appendOK := func(n int) {
					t.Helper()
					pos, err := l.Append(ctx, "s", ExpectAny, big(n))
					if err != nil {
						t.Fatalf("append %d: %v", n, err)
					}
					acked = append(acked, pos.Seq)
				}
				// Fill the first segment: the next big append rolls.
				appendOK(0)
				// Hold the writer in the write of a third append while A
				// and B queue behind it.
				release := gate.Arm()
				third := make(chan error, 1)
				go func() { _, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "small"}); third <- err }()
				<-gate.Holding
				type result struct {
					pos Position
					err error
				}
				resA, resB := make(chan result, 1), make(chan result, 1)
				go func() { p, err := l.Append(ctx, "s", ExpectAny, big(2)); resA <- result{p, err} }()
				synctest.Wait()
				go func() { p, err := l.Append(ctx, "s", ExpectAny, big(3)); resB <- result{p, err} }()
				synctest.Wait()
				// A gets seq 3 and rolls to the segment starting there; its
				// write there runs out of space.
				mu.Lock()
				failOn = segment.FormatFileName(uint64(len(acked)+2), 0) + segment.TempExt // the name it was created under
				mu.Unlock()
				release()
				if err := <-third; err != nil {
					t.Fatalf("third append: %v", err)
				}
				acked = append(acked, uint64(len(acked)+1))
				a, b := <-resA, <-resB
				if !failed {
					t.Fatal("no write to the new segment failed: the test does not test what it claims")
				}
				if a.err == nil || !errors.Is(a.err, syscall.ENOSPC) || errors.Is(a.err, ErrWriterFailed) {
					t.Fatalf("append A: %v; want an ENOSPC error that fails only its batch", a.err)
				}
				if b.err != nil {
					t.Fatalf("append B after A ran out of space: %v; want it acknowledged", b.err)
				}
				acked = append(acked, b.pos.Seq)
				appendOK(4)
				if err := l.Close(); err != nil {
					t.Fatalf("close: %v", err)
				}
				l2 := openMem(t, mem, opts)
				defer l2.Close()
				var got []uint64
				for _, e := range readAll(t, l2) {
					got = append(got, e.Seq)
				}
				if d := cmp.Diff(acked, got); d != "" {
					t.Fatalf("seqs after reopening (-acknowledged +present):\n%s", d)
				}
			})
		})
	}
}

// TestUnknownOutcomeAfterFailedFsync: an Append that fails with
// ErrWriterFailed because its fsync failed has an unknown outcome (issue 9,
// item 7). The writer fail-stops (later appends and Sync fail too); after a
// process restart the batch is present — its write reached the file, only
// the fsync failed — while after a power loss it may be absent. Both are
// what the contract allows; retrying must therefore check first (or, once
// appends are idempotent, reuse the event IDs).
func TestUnknownOutcomeAfterFailedFsync(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	// Fsync 0 is the first segment's creation, 1 the first append's.
	fsys := vfs.NewFaulty(mem, vfs.FailKind(vfs.OpSync, 2, vfs.EIO("injected")))
	opts := Options{Sync: SyncAlways, Clock: fakeClock(t0, time.Millisecond)}
	l := openMem(t, fsys, opts)
	if _, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "first", ID: "id-1"}); err != nil {
		t.Fatal(err)
	}
	_, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "unknown", ID: "id-2"})
	if !errors.Is(err, ErrWriterFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("append whose fsync failed: %v, want ErrWriterFailed wrapping the EIO", err)
	}
	if _, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "after"}); !errors.Is(err, ErrWriterFailed) {
		t.Fatalf("append after the failure: %v, want ErrWriterFailed (fail-stop)", err)
	}
	if err := l.Sync(ctx); !errors.Is(err, ErrWriterFailed) {
		t.Fatalf("Sync after the failure: %v, want ErrWriterFailed", err)
	}
	if err := l.WaitDurable(ctx, 2); !errors.Is(err, ErrWriterFailed) {
		t.Fatalf("WaitDurable after the failure: %v, want ErrWriterFailed", err)
	}
	if err := l.Close(); !errors.Is(err, ErrWriterFailed) {
		t.Fatalf("Close: %v, want the writer's failure", err)
	}
	ids := func(fsys vfs.FS) []string {
		t.Helper()
		l := openMem(t, fsys, opts)
		defer l.Close()
		var out []string
		for _, e := range readAll(t, l) {
			out = append(out, e.ID)
		}
		return out
	}
	powerLoss := mem.CrashClone(vfs.DropUnsynced, rand.New(rand.NewPCG(1, 2)))
	if got := ids(mem.Clone()); !slices.Equal(got, []string{"id-1", "id-2"}) {
		t.Errorf("after a restart: events %v, want [id-1 id-2]: the failed append is there", got)
	}
	if got := ids(powerLoss); !slices.Equal(got, []string{"id-1"}) {
		t.Errorf("after a power loss: events %v, want [id-1]: the failed append is gone", got)
	}
}

// TestFaultLoopGrouped is the fault loop for appends that the writer takes
// in one group: each step holds the writer in the write of a small append
// while two big ones queue behind it, so the first of them rolls to a new
// segment and the second forces its flush (the path of
// TestFaultENOSPCAfterRoll). An out-of-space error is injected at every
// mutating operation in turn; an error must fail only its batch or stop
// the writer for good, and after a restart and after a power loss every
// acknowledged event is there, once, in seq order.
func TestFaultLoopGrouped(t *testing.T) {
	const steps = 6
	for _, tc := range []struct {
		name string
		err  func() error
	}{
		{"ENOSPC", func() error { return vfs.ENOSPC("injected") }},
		{"short write ENOSPC", func() error { return vfs.ShortWrite(7, vfs.ENOSPC("injected")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			total := -1 // mutating operations of the workload without faults
			soft := 0
			for k := -1; k < total || total < 0; k++ {
				synctest.Test(t, func(t *testing.T) {
					mem := vfs.NewMem()
					gate := newWriteGate()
					fsys := vfs.NewFaulty(mem, func(op vfs.Op) error {
						if op.Kind.Mutating() && op.Index == k {
							return tc.err()
						}
						gate.Hold(op)
						return nil
					})
					opts := Options{SegmentSize: MinSegmentSize, Sync: SyncAlways, Clock: fakeClock(t0, time.Millisecond)}
					l, err := openFS(fsys, opts, false)
					if err != nil {
						return // failed while creating the log: nothing acknowledged
					}
					defer l.Close()
					type res struct {
						id  string
						err error
					}
					var results []res
					appendAsync := func(id string, size int) chan res {
						ch := make(chan res, 1)
						go func() {
							_, err := l.Append(t.Context(), "s", ExpectAny, Envelope{Type: "e", ID: id, Data: bytes.Repeat([]byte{'x'}, size)})
							ch <- res{id, err}
						}()
						return ch
					}
					for i := range steps {
						release := gate.Arm()
						x := appendAsync(fmt.Sprintf("x%d", i), 10)
						var xr *res
						select {
						case <-gate.Holding:
						case r := <-x:
							xr = &r // no write happened (the writer had failed)
						}
						a := appendAsync(fmt.Sprintf("a%d", i), 2100)
						synctest.Wait()
						b := appendAsync(fmt.Sprintf("b%d", i), 2100)
						synctest.Wait()
						gate.Disarm()
						release()
						if xr == nil {
							r := <-x
							xr = &r
						}
						results = append(results, *xr, <-a, <-b)
					}
					fatal := false
					var acked []string
					for _, r := range results {
						switch {
						case r.err == nil:
							if fatal {
								t.Fatalf("k=%d: %s acknowledged after the writer failed", k, r.id)
							}
							acked = append(acked, r.id)
						case !errors.Is(r.err, syscall.ENOSPC):
							// Only ENOSPC was injected: anything else is the
							// engine's own failure.
							t.Fatalf("k=%d: %s: %v; want an error caused by the injected ENOSPC", k, r.id, r.err)
						case errors.Is(r.err, ErrWriterFailed):
							fatal = true
						default:
							soft++
						}
					}
					l.Close()
					if k < 0 {
						total = fsys.Ops()
						if len(acked) != 3*steps {
							t.Fatalf("without faults %d of %d appends were acknowledged", len(acked), 3*steps)
						}
					}
					for _, after := range []struct {
						what string
						fs   *vfs.Mem
					}{
						{"restart", mem.Clone()},
						{"power loss", mem.CrashClone(vfs.Garbage, rand.New(rand.NewPCG(uint64(k+1), 7)))},
					} {
						l2, err := openFS(after.fs, opts, false)
						if err != nil {
							t.Fatalf("k=%d %s: reopen: %v", k, after.what, err)
						}
						seen := map[string]bool{}
						for i, e := range readAll(t, l2) {
							if e.Seq != uint64(i+1) || seen[e.ID] {
								t.Fatalf("k=%d %s: event %d is seq %d id %s: not contiguous or repeated", k, after.what, i, e.Seq, e.ID)
							}
							seen[e.ID] = true
						}
						l2.Close()
						for _, id := range acked {
							if !seen[id] {
								t.Fatalf("k=%d %s: acknowledged %s is missing", k, after.what, id)
							}
						}
					}
				})
			}
			t.Logf("%d ops; %d appends failed for lack of space only", total, soft)
			if soft == 0 {
				t.Error("no out-of-space error ever failed just its batch")
			}
		})
	}
}
