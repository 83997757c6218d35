package evlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// TestDirectRoundLeavesLaterRequestsToWriter: a direct round serves the
// requests queued when it started, one round only; what is queued while
// it runs is served by run's goroutine, and no request waits for another
// append to come along.
func TestDirectRoundLeavesLaterRequestsToWriter(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncNever} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				gate := newWriteGate()
				_, fsys := directFS(gate, 0)
				l := openMem(t, fsys, Options{Sync: mode})
				defer l.Close()
				synctest.Wait() // the writer's goroutine is idle: the next append writes itself

				before := l.Stats().Groups
				release := gate.Arm()
				a := appendAsync(t.Context(), l, "a")
				<-gate.Holding
				later := []<-chan error{appendAsync(t.Context(), l, "b"), appendAsync(t.Context(), l, "c")}
				synctest.Wait() // queued before the Sync, which would end their group
				sync := make(chan error, 1)
				go func() { sync <- l.Sync(t.Context()) }()
				synctest.Wait()
				release()
				if err := <-a; err != nil {
					t.Fatalf("append: %v", err)
				}
				for _, ch := range append(later, sync) {
					if err := <-ch; err != nil { // a lost wake-up blocks here: synctest reports the deadlock
						t.Fatalf("request queued during a direct round: %v", err)
					}
				}
				if got := l.Stats().Groups - before; got != 2 {
					t.Errorf("%d groups; want 2: the held append's, then the two queued behind it", got)
				}
				if got, want := l.LastSeq(), uint64(3); got != want {
					t.Errorf("LastSeq %d; want %d", got, want)
				}
			})
		})
	}
}

// TestCloseWaitsForDirectRound: Close while an appender does the
// writer's round on its own goroutine waits for that round; the append
// is acknowledged, and what was acknowledged survives a power loss right
// after Close; an append after Close began is refused with ErrClosed.
func TestCloseWaitsForDirectRound(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncNever} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				gate := newWriteGate()
				mem, fsys := directFS(gate, 0)
				l := openMem(t, fsys, Options{Sync: mode})
				synctest.Wait()

				release := gate.Arm()
				a := appendAsync(t.Context(), l, "a")
				<-gate.Holding
				closed := make(chan error, 1)
				go func() { closed <- l.Close() }()
				synctest.Wait()
				select {
				case err := <-closed:
					t.Fatalf("Close returned (%v) while an append's round was still writing", err)
				default:
				}
				if err := <-appendAsync(t.Context(), l, "b"); !errors.Is(err, ErrClosed) {
					t.Fatalf("append after Close began: %v; want ErrClosed", err)
				}
				release()
				if err := <-a; err != nil {
					t.Fatalf("append held while Close began: %v", err)
				}
				if err := <-closed; err != nil {
					t.Fatalf("Close: %v", err)
				}
				ro, err := openFS(vfs.ReadOnly(mem.CrashClone(vfs.DropUnsynced, nil)), Options{Sync: mode}, true)
				if err != nil {
					t.Fatalf("read-only open after a power loss: %v", err)
				}
				defer ro.Close()
				if got, want := ro.LastSeq(), uint64(1); got != want {
					t.Fatalf("after Close and a power loss the log ends at seq %d; want %d (the acknowledged append)", got, want)
				}
			})
		})
	}
}

// TestCanceledDuringDirectRound: an appender whose context is canceled
// while it does its own round reports that round's outcome (the event
// was written), never ctx.Err() for an event that is in the log.
func TestCanceledDuringDirectRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := newWriteGate()
		_, fsys := directFS(gate, 0)
		l := openMem(t, fsys, Options{Sync: SyncAlways})
		defer l.Close()
		synctest.Wait()

		ctx, cancel := context.WithCancel(t.Context())
		release := gate.Arm()
		a := appendAsync(ctx, l, "a")
		<-gate.Holding
		cancel()
		release()
		if err := <-a; err != nil {
			t.Fatalf("append canceled during its own write returned %v; the event is in the log (seq %d)", err, l.LastSeq())
		}
		if got := l.LastSeq(); got != 1 {
			t.Fatalf("LastSeq %d; want 1", got)
		}
	})
}

// directPanicChildEnv makes TestPanicInDirectRoundEndsProcess's child
// process the appender whose round panics.
const directPanicChildEnv = "EVLOG_DIRECT_PANIC_CHILD"

// TestPanicInDirectRoundEndsProcess: a panic out of a round an appender
// runs on its own goroutine (here the log's Clock's, on an idle log)
// ends the process, as it did on the writer goroutine, even when the
// appender's caller recovers panics: recovered, it would leave the
// writer's lock held and every later append and Close hanging. The
// child recovers the panic and exits 0 if it could.
func TestPanicInDirectRoundEndsProcess(t *testing.T) {
	if os.Getenv(directPanicChildEnv) != "" {
		synctest.Test(t, directPanicChild)
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPanicInDirectRoundEndsProcess$")
	cmd.Env = childEnv(directPanicChildEnv + "=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the appender recovered a panic out of its own writer round, and its process went on:\n%s", out)
	}
	if !bytes.Contains(out, []byte("the writer's round panicked")) || !bytes.Contains(out, []byte("the clock broke")) {
		t.Fatalf("the child failed (%v), but not with the writer's round's panic:\n%s", err, out)
	}
}

// directPanicChild is TestPanicInDirectRoundEndsProcess's child: in a
// bubble, so that the writer's goroutine is idle (synctest.Wait) when the
// append whose round panics queues, and the round is the appender's.
func directPanicChild(t *testing.T) {
	var broken atomic.Bool
	clock := func() time.Time {
		if broken.Load() {
			panic("the clock broke")
		}
		return time.Now()
	}
	l, err := Open(filepath.Join(t.TempDir(), "log"), Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(t.Context(), "s", ExpectAny, Envelope{Type: "e"}); err != nil {
		t.Fatal(err)
	}
	synctest.Wait() // the writer's goroutine waits in its select
	broken.Store(true)
	func() {
		defer func() { fmt.Println("recovered:", recover()) }()
		l.Append(t.Context(), "s", ExpectAny, Envelope{Type: "e"})
	}()
}
