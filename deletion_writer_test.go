package evlog

import (
	"errors"
	"testing"
	"testing/synctest"

	"github.com/evlog/evlog/internal/vfs"
)

// TestTombstoneSameGroup: an append sequenced after a tombstone in the
// same group commit (so the tombstone is not committed when the append is
// checked before queueing) fails with ErrStreamDeleted, and nothing of
// it is written.
func TestTombstoneSameGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		gate := newWriteGate()
		fsys := vfs.NewFaulty(vfs.NewMem(), func(op vfs.Op) error { gate.Hold(op); return nil })
		l := openMem(t, fsys, Options{})
		defer l.Close()
		appendDelN(t, l, "a-1", 2)
		// Hold the writer in the write of an append while the tombstone
		// and then an append to the tombstoned stream queue behind it.
		release := gate.Arm()
		first := make(chan error, 1)
		go func() { _, err := l.Append(ctx, "x-1", ExpectAny, Envelope{Type: "t"}); first <- err }()
		<-gate.Holding
		tomb := make(chan error, 1)
		go func() { _, err := l.TombstoneStream(ctx, "a-1"); tomb <- err }()
		synctest.Wait()
		late := make(chan error, 1)
		go func() { _, err := l.Append(ctx, "a-1", ExpectAny, Envelope{Type: "t"}); late <- err }()
		synctest.Wait()
		release()
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		if err := <-tomb; err != nil {
			t.Fatal(err)
		}
		err := <-late
		if de, ok := errors.AsType[*StreamDeletedError](err); !ok || de.Stream != "a-1" {
			t.Fatalf("append sequenced after the tombstone: %v, want a *StreamDeletedError", err)
		}
		if v, err := l.StreamVersion(ctx, "a-1"); err != nil || v != 2 {
			t.Errorf("a-1 is at version %d (%v), want 2: the refused append was written", v, err)
		}
	})
}
