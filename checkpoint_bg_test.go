package evlog

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// bigData is a msgpack string of n bytes (n < 256): events large enough
// that a few dozen cross the checkpoint interval of a small segment.
func bigData(n int) []byte {
	return append([]byte{0xd9, byte(n)}, strings.Repeat("x", n)...)
}

// appendBig appends n events of about 250 bytes each to stream s.
func appendBig(t *testing.T, l *Log, s string, n int) {
	t.Helper()
	if err := appendBigErr(t, l, s, n); err != nil {
		t.Fatal(err)
	}
}

// appendBigErr is appendBig for another goroutine than the test's.
func appendBigErr(t *testing.T, l *Log, s string, n int) error {
	for i := range n {
		if _, err := l.Append(t.Context(), s, ExpectAny, Envelope{Type: "e", Data: bigData(240)}); err != nil {
			return fmt.Errorf("append %d to %s: %w", i, s, err)
		}
	}
	return nil
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

// checkBackgroundCheckpoint waits for l's background checkpoint (if one is
// being written) with the writer held, and checks that the active
// segment's checkpoint on disk is the one its writer took (verifyCheckpoint:
// authentic, through a durable end, its index that of a scan of the
// segment). It reports whether one was written.
func checkBackgroundCheckpoint(t *testing.T, l *Log) bool {
	t.Helper()
	w := l.w
	w.lock()
	defer w.unlock()
	if j := w.ckptJob; j != nil {
		<-j.done
		if j.err != nil {
			t.Fatalf("background checkpoint of %s through %d: %v", j.seg, j.p, j.err)
		}
	} else if w.ckptEnd == 0 {
		return false
	}
	s, err := segment.Open(l.fs, w.name)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sr, err := segment.Scan(s.File(), s.Header, s.Size, segment.ScanOptions{File: s.Name})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyCheckpoint(l.fs, s, sr); err != nil {
		t.Fatalf("the background checkpoint of %s: %v", s.Name, err)
	}
	if _, err := l.fs.Stat(segment.CheckpointName(w.name)); err != nil {
		t.Fatalf("no checkpoint of %s on disk: %v", w.name, err)
	}
	return true
}

// TestBackgroundCheckpointOSDir runs the background checkpoint on an
// operating-system directory (the only place it runs on a goroutine of its
// own) with appenders on two goroutines and a reader on a third, across
// rolls, so that under -race every hand-off between the job and the
// writer, and between the frozen index and the live one, is checked; and
// checks each checkpoint taken against its segment, then the log reopened
// from them.
func TestBackgroundCheckpointOSDir(t *testing.T) {
	for _, sync := range []SyncMode{SyncAlways, SyncNever} {
		t.Run(sync.String(), func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Sync: sync, SegmentSize: 16 << 10} // a checkpoint every 8 KiB
			l, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if !l.w.ckptBackground {
				t.Fatal("the writer of an operating-system directory does not write its checkpoints in the background")
			}
			stop := make(chan struct{})
			readerDone := make(chan error, 1)
			go func() {
				for {
					select {
					case <-stop:
						readerDone <- nil
						return
					default:
					}
					for _, err := range l.Stream(t.Context(), "a", 1) {
						if err != nil {
							readerDone <- err
							return
						}
					}
				}
			}()
			const rounds, per = 6, 30 // about 7.5 KiB a round per appender: a checkpoint or a roll every round
			checked := 0
			for range rounds {
				done := make(chan error, 1)
				go func() { done <- appendBigErr(t, l, "b", per) }()
				appendBig(t, l, "a", per)
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if sync == SyncNever {
					if err := l.Sync(t.Context()); err != nil {
						t.Fatal(err)
					}
				}
				if checkBackgroundCheckpoint(t, l) {
					checked++
				}
			}
			close(stop)
			if err := <-readerDone; err != nil {
				t.Fatalf("reading beside the background checkpoints: %v", err)
			}
			if checked == 0 {
				t.Fatal("no background checkpoint was written")
			}
			want := l.LastSeq()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l2, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer l2.Close()
			if got := readAll(t, l2); uint64(len(got)) != want || got[len(got)-1].Seq != want {
				t.Fatalf("reopened: %d events, want %d", len(got), want)
			}
		})
	}
}

// TestBackgroundCheckpointFailureKeepsAcknowledgedAppends: under SyncNever
// appends are acknowledged once written, and Close makes them durable. A
// background checkpoint that fails (EIO on its file) stops the writer
// when it is collected, after groups acknowledged since it began: the
// writer must fsync them before it stops, for the stopped writer's Close
// fsyncs nothing (as checkDirSync does for a failed directory fsync).
// Written in line, a failed checkpoint stopped the writer right after the
// fsync it followed, with nothing acknowledged and not yet durable.
func TestBackgroundCheckpointFailureKeepsAcknowledgedAppends(t *testing.T) {
	checkpointDeferred = true // the job's work at the collect point, deterministic
	t.Cleanup(func() { checkpointDeferred = false })
	mem := vfs.NewMem()
	var armed atomic.Bool
	fsys := vfs.NewFaulty(mem, func(op vfs.Op) error {
		if armed.Load() && op.Kind == vfs.OpCreate && strings.HasSuffix(op.Name, segment.TempExt) {
			return vfs.EIO(op.Name)
		}
		return nil
	})
	l := openMem(t, fsys, Options{Sync: SyncNever, SegmentSize: 64 << 10})
	defer l.Close()
	appendBig(t, l, "cart", 160) // about 40 KiB, past the interval (32 KiB)
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if l.w.ckptJob == nil {
		t.Fatal("Sync past the interval started no background checkpoint")
	}
	armed.Store(true)
	// Acknowledged (written, not fsynced); its group collects the job,
	// which fails.
	appendBig(t, l, "cart", 1)
	want := l.LastSeq()
	if _, err := l.Append(t.Context(), "cart", ExpectAny, Envelope{Type: "e", Data: bigData(10)}); !errors.Is(err, ErrWriterFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append after the background checkpoint failed = %v, want an error matching ErrWriterFailed and EIO", err)
	}
	if err := l.Close(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Close after the background checkpoint failed = %v, want an error matching EIO", err)
	}
	after := mem.CrashClone(vfs.DropUnsynced, nil) // a power loss now
	l2 := openMem(t, after, Options{SegmentSize: 64 << 10})
	defer l2.Close()
	if got := l2.LastSeq(); got < want {
		t.Fatalf("after a power loss the log ends at seq %d; seq %d was acknowledged before the background checkpoint's failure stopped the writer", got, want)
	}
}
