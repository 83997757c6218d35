package evlog

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

// bigData is a msgpack string of n bytes (n < 256): events large enough
// that a few dozen cross the checkpoint interval of a small segment.
func bigData(n int) []byte {
	return append([]byte{0xd9, byte(n)}, strings.Repeat("x", n)...)
}

// appendBig appends n events of about 250 bytes each to stream s.
func appendBig(t *testing.T, l *Log, s string, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(t.Context(), s, ExpectAny, Envelope{Type: "e", Data: bigData(240)}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

// TestCloseAfterDirSyncFailureLeavesNoCheckpointRunning: Close's own
// fsync of appends written under SyncNever can make the interval's
// checkpoint fall due, and start it in the background on an
// operating-system directory; when the writer then stops (here a
// directory fsync failed earlier in the process), Close must still wait
// for that checkpoint before it closes the segment's file and releases
// the lock: a checkpoint renamed into place after the lock was released
// may land beside another process's writer.
func TestCloseAfterDirSyncFailureLeavesNoCheckpointRunning(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{Sync: SyncNever, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	w := l.w
	if !w.ckptBackground {
		t.Fatal("the writer of an operating-system directory does not write its checkpoints in the background")
	}
	appendBig(t, l, "cart", 160) // about 40 KiB, past the interval (32 KiB), not fsynced
	eio := error(syscall.EIO)
	l.dirSync.failed.Store(&eio) // a directory fsync failed elsewhere in the process
	if err := l.Close(); !errors.Is(err, ErrDirSyncFailed) {
		t.Fatalf("Close after a failed directory fsync = %v, want an error matching ErrDirSyncFailed", err)
	}
	if j := w.ckptJob; j != nil {
		<-j.done // do not leave it writing into the test's directory
		t.Fatalf("Close returned (the segment's file closed, the lock released) with the checkpoint of %s through %d still being written in the background", j.seg, j.p)
	}
}
