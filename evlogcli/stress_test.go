package evlogcli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// stressWriterEnv makes the test binary act as the stress test's writer
// process: EVLOGCTL_STRESS_WRITER=DIR, the event count in argv[1].
const stressWriterEnv = "EVLOGCTL_STRESS_WRITER"

// stressWriter appends count events in batches of 10 over 7 streams with
// tiny segments and SyncAlways, printing "acked SEQ" after each batch is
// durable and acknowledging a durable subscription every 50 batches,
// while two goroutines compact (plain and compressed, in turn) and save
// and prune stats snapshots: every state a writer passes through, as
// often as possible. It returns the exit status.
func stressWriter(dir string, count uint64) int {
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "stress writer: %s: %v\n", what, err)
		return 1
	}
	l, err := evlog.Open(dir, evlog.Options{SegmentSize: evlog.MinSegmentSize * 4})
	if err != nil {
		return fail("open", err)
	}
	store, err := l.Snapshots()
	if err != nil {
		return fail("snapshots", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := l.Compact(ctx, evlog.CompactOptions{TargetSize: 256 << 10, Compress: i%2 == 1}); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("compact: %w", err)
				return
			}
		}
	})
	wg.Go(func() {
		for ctx.Err() == nil {
			res, err := replay.State(ctx, l, store, statsSubject, replay.Latest(), statsSpec, replay.Options{})
			if err == nil && res.Seq > 0 {
				_, _, err = replay.Save(ctx, store, l.LogID(), statsSubject, statsSpec, res)
				if errors.Is(err, snapshot.ErrExists) {
					err = nil
				}
			}
			if err == nil {
				_, err = store.Prune(ctx, statsSubject.Name, snapshot.PrunePolicy{KeepLast: 2})
			}
			if err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("snapshot: %w", err)
				return
			}
		}
	})
	sub, err := l.Subscription("stress", evlog.Filter{})
	if err != nil {
		return fail("subscription", err)
	}
	out := bufio.NewWriter(os.Stdout)
	pad := strings.Repeat("p", 60)
	var n uint64
	for n < count {
		var evs []evlog.Envelope
		for range 10 {
			n++
			evs = append(evs, evlog.Envelope{Type: "tick", Data: loadData(nil, n, pad)})
		}
		pos, err := l.Append(ctx, fmt.Sprintf("s-%d", n%7), evlog.ExpectAny, evs...)
		if err != nil {
			return fail("append", err)
		}
		fmt.Fprintf(out, "acked %d\n", pos.Seq)
		out.Flush()
		if n%500 == 0 {
			if err := sub.Ack(ctx, pos.Seq); err != nil {
				return fail("ack", err)
			}
		}
		select {
		case err := <-errs:
			return fail("background", err)
		default:
		}
	}
	cancel()
	wg.Wait()
	select {
	case err := <-errs:
		return fail("background", err)
	default:
	}
	if err := l.Close(); err != nil {
		return fail("close", err)
	}
	return 0
}

// TestStressReadersBesideWriter: one writer process appending with tiny
// segments while it compacts and saves and prunes snapshots; reader
// processes run verify (--replay too), dump (with filters too), tail,
// inspect, streams, subscriptions, snapshots and state (--at too) in
// loops and one tail -f
// follows from seq 1; this process follows with OpenReadOnly + Subscribe.
// No reader may report a false error, and every follower must see exactly
// 1..N in order, equal to a final dump.
func TestStressReadersBesideWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const count = 15000
	dir := filepath.Join(t.TempDir(), "log")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writer := exec.Command(os.Args[0], strconv.Itoa(count))
	writer.Env = append(os.Environ(), stressWriterEnv+"="+dir)
	wout, err := writer.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var werr bytes.Buffer
	writer.Stderr = &werr
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	acks := readAcks(wout)
	t.Cleanup(func() { writer.Process.Kill() }) // a no-op once it exited; ends it after a failure
	select {
	case <-acks.first:
	case <-acks.done:
		writer.Wait()
		t.Fatalf("the writer acked nothing: %s", werr.String()) // stdout ended: Wait is safe
	case <-time.After(hangGuard):
		t.Fatalf("waited %v for the writer's first ack", hangGuard)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	var problems []string
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	runs := map[string]int{}
	var readers sync.WaitGroup
	// Four reader processes at a time, each going through its commands in
	// turn.
	for _, cmds := range [][][]string{
		{{"verify", dir}, {"verify", dir, "--replay"}},
		{{"dump", dir, "--format", "jsonl"}, {"dump", dir, "--stream", "s-3", "--type", "tick", "--format", "jsonl"}, {"tail", dir, "-n", "5"}},
		{{"inspect", dir}, {"streams", dir}, {"subscriptions", dir}, {"snapshots", dir}},
		{{"state", dir}, {"state", dir, "--at", "-20ms"}, {"state", dir, "--seq", "1", "--dry-run"}},
	} {
		readers.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				args := cmds[i%len(cmds)]
				cmd := exec.Command(os.Args[0], args...)
				cmd.Env = append(os.Environ(), beMainEnv+"=1")
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				if err != nil {
					report("evlogctl %s beside the writer: %v\nstderr:\n%s\nstdout (its first lines):\n%s", strings.Join(args, " "), err, stderr.String(), headLines(stdout.String(), 20))
					continue
				}
				if args[0] == "dump" && len(args) == 4 {
					if err := contiguousJSONL(stdout.String()); err != nil {
						report("dump beside the writer: %v", err)
					}
				}
				if args[0] == "state" && strings.Contains(stdout.String(), "fallback") {
					report("evlogctl %s beside the writer reports a fallback: %s", strings.Join(args, " "), stdout.String())
				}
				mu.Lock()
				runs[args[0]]++
				mu.Unlock()
			}
		})
	}
	// tail -f from seq 1, in a process.
	tail := exec.Command(os.Args[0], "tail", dir, "-f", "--from", "1", "--format", "jsonl")
	tail.Env = append(os.Environ(), beMainEnv+"=1")
	var tailOut, tailErr syncBuffer
	tail.Stdout, tail.Stderr = &tailOut, &tailErr
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	// OpenReadOnly + Subscribe, in this process.
	var subscribed []string
	subDone := make(chan error, 1)
	go func() {
		r, err := evlog.OpenReadOnly(dir, evlog.Options{FollowInterval: 5 * time.Millisecond})
		if err != nil {
			subDone <- err
			return
		}
		defer r.Close()
		for e, err := range r.Subscribe(ctx, 1) {
			if err != nil {
				subDone <- err
				return
			}
			subscribed = append(subscribed, fmt.Sprintf("%d %s %x", e.Seq, e.Stream, e.Data))
			if e.Seq == count {
				subDone <- nil
				return
			}
		}
	}()

	await(t, acks.done, fmt.Sprintf("the writer to ack %d events and exit", count)) // all of stdout read: Wait closes the pipe
	werrWait := writer.Wait()
	if werrWait != nil {
		cancel()
		readers.Wait()
		t.Fatalf("the writer failed: %v: %s", werrWait, werr.String())
	}
	if last := acks.acks[len(acks.acks)-1]; last != count {
		t.Fatalf("the writer's last ack is %d, want %d", last, count)
	}
	if err := await(t, subDone, fmt.Sprintf("OpenReadOnly+Subscribe beside the writer to reach seq %d", count)); err != nil {
		t.Errorf("OpenReadOnly+Subscribe beside the writer: %v", err)
	}
	waitUntil(t, "tail -f to print every event", func() bool { return strings.Count(tailOut.String(), "\n") >= count })
	tail.Process.Signal(syscall.SIGTERM)
	if err := tail.Wait(); err != nil {
		t.Errorf("tail -f: %v: %s", err, tailErr.String())
	}
	cancel()
	readers.Wait()
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("reader runs beside the writer: %v", runs)

	final := run1(t, "dump", dir, "--format", "jsonl")
	if final.code != 0 {
		t.Fatalf("final dump: exit %d: %s", final.code, final.stderr)
	}
	want := splitLines(final.stdout)
	if len(want) != count {
		t.Fatalf("the final dump has %d events, want %d", len(want), count)
	}
	if got := splitLines(tailOut.String()); !slices.Equal(got, want) {
		t.Errorf("tail -f printed %d lines that differ from the final dump's %d", len(got), len(want))
	}
	if len(subscribed) != count {
		t.Errorf("Subscribe on a read-only log delivered %d events, want %d", len(subscribed), count)
	}
	for i, s := range subscribed {
		if !strings.HasPrefix(s, strconv.Itoa(i+1)+" ") {
			t.Fatalf("Subscribe delivered %q as event %d", s, i+1)
		}
	}
}

// headLines returns the first n lines of s: enough of a failed reader's
// output (a verify's findings come first) to tell what it saw, without a
// dump's megabytes.
func headLines(s string, n int) string {
	lines := splitLines(s)
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("(%d more lines)", len(lines)-n))
	}
	return strings.Join(lines, "\n")
}

// contiguousJSONL checks that a jsonl dump holds seqs 1..n in order.
func contiguousJSONL(out string) error {
	for i, line := range splitLines(out) {
		var e struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			return fmt.Errorf("line %d: %v", i+1, err)
		}
		if e.Seq != uint64(i+1) {
			return fmt.Errorf("line %d has seq %d", i+1, e.Seq)
		}
	}
	return nil
}
