package evlog

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// markRetryChildEnv makes the test binary the writer process of
// TestIdleWriterProcessRetriesSkippedMark: EVLOG_MARK_RETRY_CHILD=DIR,
// and EVLOG_MARK_RETRY_FAILS the number of mark writes that run out of
// space (see markRetryChild).
const markRetryChildEnv = "EVLOG_MARK_RETRY_CHILD"

// markRetryChild is a writer process under SyncAlways on the real
// directory dir whose filesystem runs out of space for the mark of its
// last group: it appends two events (each its own group), then a third
// whose group's mark write, and the next fails-1 mark writes (the idle
// writer's retries), fail with ENOSPC; from then on there is space. It
// prints "acked SEQ FAILED" (FAILED: the mark writes that failed before
// the ack, which must be 1: the group's own) and goes idle — no append,
// Sync or Close — until its stdin ends, then closes the log. It never
// returns.
func markRetryChild(dir string, fails int32) {
	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "mark retry child: %s: %v\n", what, err)
		os.Exit(2)
	}
	osfs, err := vfs.CreateOS(dir)
	if err != nil {
		fail("opening the directory", err)
	}
	var left, failed atomic.Int32 // mark writes still to fail; failed so far
	fsys := vfs.NewFaulty(osfs, func(op vfs.Op) error {
		if isSegmentWrite(op) && op.Len == segment.MarkFrameSize && left.Add(-1) >= 0 {
			failed.Add(1)
			return vfs.ENOSPC(op.Name)
		}
		return nil
	})
	l, err := openFS(fsys, Options{Sync: SyncAlways}, false)
	if err != nil {
		fail("open", err)
	}
	ctx := context.Background()
	for i := range 3 {
		if i == 2 {
			left.Store(fails) // the last group's mark, then the retries
		}
		if _, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "e", Data: fmt.Appendf(nil, "\xa6ev%04d", i)}); err != nil {
			fail(fmt.Sprintf("append %d", i), err)
		}
	}
	fmt.Printf("acked %d %d\n", l.LastSeq(), failed.Load())
	io.Copy(io.Discard, os.Stdin) // idle until the parent is done
	if err := l.Close(); err != nil {
		fail("close", err)
	}
	if err := osfs.Close(); err != nil {
		fail("closing the directory", err)
	}
	os.Exit(0)
}

// TestIdleWriterProcessRetriesSkippedMark is TestIdleWriterRetriesSkippedMark
// with the processes the promise is about: under SyncAlways a reader in
// another process serves a group only once a mark records it, and a mark
// skipped for lack of space is written by the idle writer's retry
// (markRetry) once space is back. A writer process acknowledges a group
// whose mark write ran out of space, space comes back (at once, or after
// some retries failed too), and the writer goes idle; this process, a
// reader in another process, must come to serve the acknowledged seq —
// through a log it opened read-only before, refreshed, and through a
// fresh OpenReadOnly — before the writer does anything else.
//
// It polls, with a short wait between looks: the only way to watch
// another process's progress, as the promise is stated (the writer says
// nothing when its retry writes the mark, and must not have to). The
// wait orders nothing in this process, and the outcome does not depend
// on how long a look takes; the bound, hangGuard, is far beyond the
// retries' delays (markRetryMin doubling to markRetryMax) and only turns
// a writer that never writes the mark into a failure.
func TestIdleWriterProcessRetriesSkippedMark(t *testing.T) {
	if dir := os.Getenv(markRetryChildEnv); dir != "" {
		fails, _ := strconv.Atoi(os.Getenv("EVLOG_MARK_RETRY_FAILS"))
		markRetryChild(dir, int32(fails))
	}
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, tc := range []struct {
		name  string
		fails int // mark writes that fail: the group's, then the retries'
	}{
		{"space back at once", 1},
		{"space back after retries", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := startChild(t, "TestIdleWriterProcessRetriesSkippedMark", markRetryChildEnv+"="+dir, "EVLOG_MARK_RETRY_FAILS="+strconv.Itoa(tc.fails))
			cmd, idle, out, stderr := c.cmd, c.stdin, c.stdout, c.stderr
			lines, outDone := make(chan string, 1), make(chan struct{})
			go func() {
				defer close(outDone)
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					select {
					case lines <- sc.Text():
					default: // only the first line counts
					}
				}
			}()
			// stop ends the writer process (kill: it may hang) and
			// returns its exit error, once all of its stdout is read.
			stop := func(kill bool) error {
				idle.Close()
				if kill {
					cmd.Process.Kill()
				}
				<-outDone
				return cmd.Wait()
			}
			fatal := func(format string, args ...any) {
				t.Helper()
				werr := stop(true)
				t.Fatalf(format+"\nthe writer process: %v\n%s", append(args, werr, stderr.String())...)
			}

			var acked uint64
			var failed int
			select {
			case l := <-lines:
				if _, err := fmt.Sscanf(l, "acked %d %d", &acked, &failed); err != nil {
					fatal("the writer process said %q, want \"acked SEQ FAILED\"", l)
				}
			case <-outDone:
				fatal("the writer process acknowledged nothing")
			case <-time.After(hangGuard):
				fatal("waited %v for the writer process's ack", hangGuard)
			}
			if acked != 3 || failed != 1 {
				fatal("the writer process acknowledged seq %d with %d mark writes failed; want seq 3, its group's mark (1) failed: the test does not test what it claims", acked, failed)
			}

			ro, err := OpenReadOnly(dir, Options{Sync: SyncAlways})
			if err != nil {
				fatal("read-only open: %v", err)
			}
			defer ro.Close()
			var refreshed, opened uint64
			deadline := time.Now().Add(hangGuard)
			for refreshed < acked || opened < acked {
				if time.Now().After(deadline) {
					fatal("%v after the writer process acknowledged seq %d (its mark skipped for lack of space, space back, the writer idle), a reader in another process serves up to seq %d after Refresh, %d after a new OpenReadOnly: the idle writer never wrote the skipped mark",
						hangGuard, acked, refreshed, opened)
				}
				if refreshed < acked {
					if err := ro.Refresh(); err != nil {
						fatal("Refresh: %v", err)
					}
					refreshed = ro.LastSeq()
				}
				if opened < acked {
					l, err := OpenReadOnly(dir, Options{Sync: SyncAlways})
					if err != nil {
						fatal("read-only open: %v", err)
					}
					opened = l.LastSeq()
					if err := l.Close(); err != nil {
						fatal("closing a read-only log: %v", err)
					}
				}
				if refreshed < acked || opened < acked {
					time.Sleep(5 * time.Millisecond) // another process's progress: see the doc comment
				}
			}
			if err := servesPrefix(t, ro, acked); err != nil {
				fatal("the refreshed reader: %v", err)
			}

			// The writer, still idle, ends cleanly: with the mark written
			// Close has nothing to report.
			if err := stop(false); err != nil {
				t.Fatalf("the writer process: %v\n%s", err, stderr.String())
			}
		})
	}
}
