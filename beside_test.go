package evlog

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// TestReadOnlyBesideWriter: read-only opens, Refreshes and Verifies run in
// a loop while a writer appends with tiny segments (rolling all the time)
// and compacts: none may report a state the writer passes through as an
// error, and each sees a contiguous committed prefix.
func TestReadOnlyBesideWriter(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	w := openMem(t, mem, Options{SegmentSize: MinSegmentSize, Sync: SyncNever})
	defer w.Close()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer stop() // the readers stop when the writer is done
		for i := range 3000 {
			evs := make([]Envelope, 5)
			for j := range evs {
				evs[j] = Envelope{Type: "t", Data: make([]byte, 80)}
			}
			if _, err := w.Append(ctx, fmt.Sprintf("s-%d", i%7), ExpectAny, evs...); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for i := 0; wctx.Err() == nil; i++ {
			if _, err := w.Compact(ctx, CompactOptions{TargetSize: 64 << 10, Compress: i%2 == 1}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	ro := vfs.ReadOnly(mem)
	rounds := 0
	for round := 0; wctx.Err() == nil || round < 3; round++ {
		rounds++
		r, err := openFS(ro, Options{}, true)
		if err != nil {
			t.Errorf("round %d: read-only open beside the writer: %v", round, err)
			continue
		}
		for range 3 {
			if err := r.Refresh(); err != nil {
				t.Errorf("round %d: Refresh beside the writer: %v", round, err)
			}
		}
		want := uint64(1)
		for e, err := range r.Events(ctx, 1) {
			if err != nil {
				t.Errorf("round %d: reading beside the writer: %v", round, err)
				break
			}
			if e.Seq != want {
				t.Errorf("round %d: seq %d, want %d", round, e.Seq, want)
				break
			}
			want++
		}
		r.Close()
		rep, err := besideWriter(ro, func() (VerifyReport, error) { return verifyFS(ctx, ro) },
			func(r VerifyReport, err error) bool { return err != nil || r.Corrupt() })
		if err != nil || rep.Corrupt() {
			t.Errorf("round %d: verify beside the writer: %v %v", round, rep.Findings, err)
		}
	}
	wg.Wait()
	t.Logf("%d rounds of read-only opens beside the writer", rounds)
}
