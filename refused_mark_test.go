package evlog

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// TestRefusedRollAppendMarksBeforeReturning: an append refused after the
// roll it needed returns only once the writer has written the mark into
// the new, empty segment (markEmpty), the mark that proves the seal
// before it. TestSealedDamageBeforeEmptyNewest (killed=true) clones the
// files as soon as the refusal returns, as a process killed then leaves
// them. The writer used to complete the request first and write the mark
// after. So the clone sometimes lacked the mark (seen under scheduling
// noise: 1 run of the suite), and the next Open took a bit flip in the
// sealed segment for a torn seal, truncated every event from it on and
// removed the newest segment. Here the writer is held at that mark write
// and synctest.Wait lets every other goroutine run: the append must still
// be waiting.
func TestRefusedRollAppendMarksBeforeReturning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		first := segment.FormatFileName(1, 0)
		var armed atomic.Bool
		var once sync.Once
		reached, release := make(chan struct{}), make(chan struct{})
		fsys := vfs.NewFaulty(vfs.NewMem(), func(op vfs.Op) error {
			if armed.Load() && isSegmentWrite(op) && op.Name != first && op.Len == segment.MarkFrameSize {
				once.Do(func() {
					close(reached)
					<-release
				})
			}
			return nil
		})
		l := openMem(t, fsys, crashOpts(SyncNever))
		defer l.Close()
		var v uint64
		for l.Stats().Bytes < MinSegmentSize-300 {
			if _, err := l.Append(ctx, "s", ExpectVersion(v), Envelope{Type: "t", Data: make([]byte, 100)}); err != nil {
				t.Fatal(err)
			}
			v++
		}
		armed.Store(true)
		appended := make(chan error, 1)
		go func() {
			// Needs a roll, which happens; then the append is refused.
			_, err := l.Append(ctx, "s", ExpectVersion(v+1), Envelope{Type: "t", Data: make([]byte, 400)})
			appended <- err
		}()
		<-reached // the writer is about to write the empty segment's mark
		synctest.Wait()
		select {
		case err := <-appended:
			close(release)
			t.Fatalf("the refused append returned (%v) before the mark that proves the seal was written: a process killed now leaves a seal the next Open cannot trust", err)
		default:
		}
		close(release)
		if err := <-appended; !errors.Is(err, ErrVersionConflict) {
			t.Fatalf("append: %v, want a version conflict", err)
		}
	})
}
