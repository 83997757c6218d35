package evlog

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// The writer's round runs on run's goroutine or, when the log is idle and
// an appender queues alone, on that appender's goroutine (writer.direct).
// These tests pin what the direct round must leave to run's goroutine and
// what it must not change: adaptive group commit, requests queued during
// it, Close and a canceled context during it.

// directFS is a Faulty memory file system for the tests below: gate holds
// segment writes when armed, and every fsync of a segment file takes
// fsync of (fake, testing/synctest) time, so the writer measures a
// nonzero fsync duration, which adaptive group commit (gather) needs.
func directFS(gate *writeGate, fsync time.Duration) (*vfs.Mem, vfs.FS) {
	mem := vfs.NewMem()
	return mem, vfs.NewFaulty(mem, func(op vfs.Op) error {
		gate.Hold(op)
		if op.Kind == vfs.OpSync && strings.HasSuffix(strings.TrimSuffix(op.Name, segment.TempExt), segment.Ext) {
			time.Sleep(fsync)
		}
		return nil
	})
}

// appendAsync appends one event to stream s on a new goroutine and
// returns the channel its error arrives on.
func appendAsync(ctx context.Context, l *Log, s string) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, s, ExpectAny, Envelope{Type: "e", Data: []byte("\xa1x")})
		ch <- err
	}()
	return ch
}

// sharedGroup has two appenders' events written in one group (a first
// append held in its write, two queued behind it), so that the writer's
// last group was shared, and waits until the writer is idle.
func sharedGroup(t *testing.T, l *Log, gate *writeGate) {
	t.Helper()
	release := gate.Arm()
	a := appendAsync(t.Context(), l, "a")
	<-gate.Holding
	b, c := appendAsync(t.Context(), l, "b"), appendAsync(t.Context(), l, "c")
	synctest.Wait()
	g := l.Stats().Groups
	release()
	for _, ch := range []<-chan error{a, b, c} {
		if err := <-ch; err != nil {
			t.Fatalf("append: %v", err)
		}
	}
	synctest.Wait()
	if got := l.Stats().Groups - g; got != 2 {
		t.Fatalf("%d groups; want 2, the held append's and one of the two queued behind it: the test does not test what it claims", got)
	}
}

// TestLoneAppendAfterSharedGroupGathers: under SyncAlways, once a group
// was shared by several appenders, the writer waits a little (gather, at
// most half an fsync) for the next one to fill up again before writing
// it, so that one fsync serves them all. A direct round (an appender
// that queues alone on an idle writer and writes its own group) skipped
// that wait: with many appenders, the first to come back after a shared
// group paid an fsync alone, and the rest another, which halves the
// groups' size and doubles the fsyncs under load.
func TestLoneAppendAfterSharedGroupGathers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := newWriteGate()
		_, fsys := directFS(gate, 2*time.Millisecond) // gather waits up to maxGatherDelay
		l := openMem(t, fsys, Options{Sync: SyncAlways})
		defer l.Close()
		sharedGroup(t, l, gate)

		before := l.Stats().Groups
		d := appendAsync(t.Context(), l, "d")
		e := make(chan error, 1)
		go func() {
			time.Sleep(maxGatherDelay / 5) // well within the gather window
			e <- <-appendAsync(t.Context(), l, "e")
		}()
		for _, ch := range []<-chan error{d, e} {
			if err := <-ch; err != nil {
				t.Fatalf("append: %v", err)
			}
		}
		if got := l.Stats().Groups - before; got != 1 {
			t.Fatalf("two appends %v apart, after a group shared by two appenders, took %d groups (and fsyncs); want 1: the writer did not gather them", maxGatherDelay/5, got)
		}
	})
}
