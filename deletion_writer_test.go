package evlog

import (
	"errors"
	"sync/atomic"
	"syscall"
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

// TestTombstoneOutOfSpace: a tombstone whose group fails for lack of
// space (nothing of it written, the writer going on) deletes nothing:
// appends to the stream still succeed, and once space is freed the
// tombstone, retried, takes effect.
func TestTombstoneOutOfSpace(t *testing.T) {
	ctx := t.Context()
	var full atomic.Bool
	fsys := vfs.NewFaulty(vfs.NewMem(), func(op vfs.Op) error {
		if op.Kind == vfs.OpWrite && full.Load() {
			return vfs.ENOSPC(op.Name)
		}
		return nil
	})
	l := openMem(t, fsys, Options{})
	defer l.Close()
	appendDelN(t, l, "a-1", 2)
	full.Store(true)
	if _, err := l.TombstoneStream(ctx, "a-1"); !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrWriterFailed) {
		t.Fatalf("TombstoneStream on a full disk: %v, want an ENOSPC failure of its batch only", err)
	}
	full.Store(false)
	if _, err := l.Append(ctx, "a-1", ExpectAny, Envelope{Type: "t"}); err != nil {
		t.Fatalf("append after a tombstone that was never written: %v", err)
	}
	if got := readVisibleStream(t, l, "a-1"); got != 3 {
		t.Fatalf("stream a-1 reads %d events, want 3", got)
	}
	if _, err := l.TombstoneStream(ctx, "a-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "a-1", ExpectAny, Envelope{Type: "t"}); !errors.Is(err, ErrStreamDeleted) {
		t.Fatalf("append after the tombstone: %v, want ErrStreamDeleted", err)
	}
}

// readVisibleStream counts the events of stream that l reads.
func readVisibleStream(t *testing.T, l *Log, stream string) int {
	t.Helper()
	n := 0
	for _, err := range l.Stream(t.Context(), stream, 1) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}
