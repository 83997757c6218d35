package evlog

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// gateFS, once armed, blocks the first Create of a segment temporary (a
// compaction's output) until release is closed, after closing reached.
type gateFS struct {
	vfs.FS
	armed   atomic.Bool
	once    sync.Once
	reached chan struct{}
	release chan struct{}
}

func (g *gateFS) Create(name string) (vfs.File, error) {
	if g.armed.Load() && strings.HasSuffix(name, segment.Ext+segment.TempExt) {
		g.once.Do(func() {
			close(g.reached)
			<-g.release
		})
	}
	return g.FS.Create(name)
}

// TestCloseWaitsForCompact: Close must not release the lock and the files
// while a Compact is still running (it could then write and remove files
// under another writer). Close cancels the compaction and returns only
// after Compact has.
func TestCloseWaitsForCompact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background() // t.Context is not cancelled before Cleanup
		mem := vfs.NewMem()
		gate := &gateFS{FS: mem, reached: make(chan struct{}), release: make(chan struct{})}
		l := openMem(t, gate, crashOpts(SyncAlways))
		if err := runWorkload(ctx, l, genWorkload(3, 120)); err != nil {
			t.Fatal(err)
		}
		before := observe(t, l)

		// The directory's operation count when Close returned: the
		// compaction must not touch the directory after that. (Which of
		// the two goroutines then resumes first is the scheduler's
		// choice, so their return order is not asserted.)
		var opsAtClose atomic.Int64
		gate.armed.Store(true)
		compactErr := make(chan error, 1)
		go func() {
			_, err := l.Compact(ctx, CompactOptions{TargetSize: 1 << 20})
			compactErr <- err
		}()
		<-gate.reached // the compaction is blocked creating its output
		closeErr := make(chan error, 1)
		go func() {
			err := l.Close()
			opsAtClose.Store(int64(mem.Ops()))
			closeErr <- err
		}()
		synctest.Wait() // Close has done all it can without the compaction
		select {
		case err := <-closeErr:
			close(gate.release)
			<-compactErr
			t.Fatalf("Close returned (%v) while Compact was still running", err)
		default:
		}
		close(gate.release)
		if err := <-compactErr; !errors.Is(err, ErrClosed) {
			t.Fatalf("Compact stopped by Close: %v, want ErrClosed", err)
		}
		if err := <-closeErr; err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got, at := int64(mem.Ops()), opsAtClose.Load(); got != at {
			t.Fatalf("the compaction changed the directory after Close returned (%d operations then, %d now)", at, got)
		}
		names, err := mem.List()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if strings.HasSuffix(n, segment.TempExt) {
				t.Errorf("the cancelled compaction left %s behind", n)
			}
		}
		l = openMem(t, mem, crashOpts(SyncAlways))
		defer l.Close()
		if d := cmp.Diff(before, observe(t, l)); d != "" {
			t.Fatalf("reads differ after the cancelled compaction (-before +after):\n%s", d)
		}
	})
}
