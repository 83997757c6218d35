package evlogcli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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
	"github.com/evlog/evlog/internal/vfs"
)

// startLoad starts "evlogctl load DIR args…" as a real process (this test
// binary in evlogctl mode) and returns it with a reader of its stdout.
func startLoad(t *testing.T, dir string, args ...string) (*exec.Cmd, io.ReadCloser, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"load", dir}, args...)...)
	cmd.Env = append(os.Environ(), beMainEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdout, &stderr
}

// ackReader collects the complete "acked SEQ" lines of a load process.
type ackReader struct {
	mu    sync.Mutex
	acks  []uint64
	bad   []string
	first chan struct{} // closed at the first ack
	done  chan struct{} // closed when stdout ends
}

func readAcks(r io.Reader) *ackReader {
	a := &ackReader{first: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		var once sync.Once
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return // a partial last line (no newline) was never printed whole
			}
			a.mu.Lock()
			seq, perr := strconv.ParseUint(strings.TrimPrefix(strings.TrimSuffix(line, "\n"), "acked "), 10, 64)
			if !strings.HasPrefix(line, "acked ") || perr != nil {
				a.bad = append(a.bad, line)
			} else {
				a.acks = append(a.acks, seq)
				once.Do(func() { close(a.first) })
			}
			a.mu.Unlock()
		}
	}()
	return a
}

// hangGuard bounds the waits of the process tests. It is no timing
// assertion: it only turns a hang into a failure, so it is far longer than
// anything takes even on a loaded machine.
const hangGuard = 2 * time.Minute

// waitUntil polls cond until it holds; it fails the test only if cond
// never holds within hangGuard.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", hangGuard, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (a *ackReader) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acks)
}

// dumpedEvent is the part of a jsonl line the crash test checks.
type dumpedEvent struct {
	Seq     uint64 `json:"seq"`
	Stream  string `json:"stream"`
	Version uint64 `json:"version"`
	Data    struct {
		N uint64 `json:"n"`
	} `json:"data"`
}

// dumpAll dumps dir in-process and checks the log's shape: seqs contiguous
// from 1, versions contiguous per stream.
func dumpAll(t *testing.T, dir string) []dumpedEvent {
	t.Helper()
	r := run1(t, "dump", dir, "--format", "jsonl")
	if r.code != 0 {
		t.Fatalf("dump after a kill: exit %d: %s", r.code, r.stderr)
	}
	var evs []dumpedEvent
	versions := map[string]uint64{}
	for i, line := range splitLines(r.stdout) {
		var e dumpedEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("dump line %d: %v: %s", i+1, err, line)
		}
		if e.Seq != uint64(i+1) {
			t.Fatalf("dump line %d has seq %d: seqs are not contiguous", i+1, e.Seq)
		}
		if e.Version != versions[e.Stream]+1 {
			t.Fatalf("seq %d is version %d of %s, want %d", e.Seq, e.Version, e.Stream, versions[e.Stream]+1)
		}
		versions[e.Stream] = e.Version
		evs = append(evs, e)
	}
	return evs
}

// killRand skips t in -short mode (the kill tests start processes) and
// returns the random source of its kill points: seeded from the clock,
// or from EVLOG_KILL_SEED to replay a failed run. The seed is logged.
func killRand(t *testing.T) *rand.Rand {
	t.Helper()
	if testing.Short() {
		t.Skip("starts processes")
	}
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("EVLOG_KILL_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("seed %d (EVLOG_KILL_SEED=%d replays it)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// TestLoadKilled runs load as a real process, kills it with SIGKILL at
// random moments, and checks after each kill that every acked seq is in
// the log (dump exits 0, seqs contiguous), that verify exits 0 (a torn tail
// is allowed), and that the next load continues at the next seq.
func TestLoadKilled(t *testing.T) {
	rng := killRand(t)
	dir := filepath.Join(t.TempDir(), "log")
	modes := [][]string{
		{"--sync", "always", "--batch", "7"},
		{"--sync", "interval", "--sync-interval", "2ms", "--batch", "5"},
		{"--sync", "always", "--batch", "1"},
		{"--sync", "interval", "--sync-interval", "1ms", "--batch", "13"},
		{"--sync", "always", "--batch", "3"},
		{"--sync", "never", "--batch", "4"},
	}
	var before uint64 // events in the log before this run
	for i, mode := range modes {
		args := append([]string{"--count", "1000000", "--size", "64", "--streams", "5", "--segment-size", "4096"}, mode...)
		cmd, stdout, stderr := startLoad(t, dir, args...)
		acks := readAcks(stdout)
		// Kill once the run is under way (its first ack; for --sync never,
		// which acks nothing, its first batch a reader sees), at a random
		// moment after that: the kill point is random, the test's outcome
		// is not.
		wait := time.Duration(20+rng.IntN(150)) * time.Millisecond
		if mode[1] != "never" {
			select {
			case <-acks.first:
			case <-acks.done: // exited before any ack: reported below
			case <-time.After(hangGuard):
				t.Fatalf("run %d: no ack within %v", i, hangGuard)
			}
		} else {
			// (Left to the random delay alone, a loaded machine killed
			// this run before it had written anything.)
			waitUntil(t, fmt.Sprintf("run %d: the --sync never load's first batch", i), func() bool {
				return exitedEarly(acks) || servedSeq(t, dir) > before
			})
			if exitedEarly(acks) {
				cmd.Wait()
				t.Fatalf("run %d (%v): exited before its first batch: %s", i, mode, stderr)
			}
		}
		time.Sleep(wait)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-acks.done // every ack line printed before the kill (Wait would close the pipe)
		cmd.Wait()
		if len(acks.bad) > 0 {
			t.Fatalf("run %d: stdout carried other lines than acks: %q", i, acks.bad)
		}
		if mode[1] != "never" && len(acks.acks) == 0 {
			t.Fatalf("run %d (%v): no ack before the kill; stderr: %s", i, mode, stderr)
		}
		if mode[1] == "never" && len(acks.acks) > 0 {
			t.Fatalf("run %d: --sync never printed acks", i)
		}

		evs := dumpAll(t, dir)
		last := uint64(len(evs))
		prev := before
		for _, a := range acks.acks {
			if a <= prev {
				t.Fatalf("run %d: ack %d does not follow %d", i, a, prev)
			}
			if a > last {
				t.Fatalf("run %d: acked seq %d is not in the log (it ends at %d)", i, a, last)
			}
			prev = a
		}
		// Event n of this run is the run's n-th event.
		for _, e := range evs[before:] {
			if e.Data.N != e.Seq-before {
				t.Fatalf("run %d: seq %d has n=%d, want %d", i, e.Seq, e.Data.N, e.Seq-before)
			}
		}
		if r := run1(t, "verify", dir); r.code != 0 {
			t.Fatalf("run %d: verify after a kill: exit %d\n%s%s", i, r.code, r.stdout, r.stderr)
		}
		// A reader serves what the killed writer recorded as durable; a
		// writer's recovery also keeps a last group that was committed but
		// whose fsync the kill left unrecorded (never acknowledged under
		// SyncAlways). Recover now, as the next run would: the log then
		// holds at least what the reader saw, and the next run continues
		// after it.
		w, err := evlog.Open(dir, evlog.Options{})
		if err != nil {
			t.Fatalf("run %d: recovery after the kill: %v", i, err)
		}
		recovered := w.LastSeq()
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if recovered < last {
			t.Fatalf("run %d: recovery kept %d events, but a reader had served %d", i, recovered, last)
		}
		if after := dumpAll(t, dir); uint64(len(after)) != recovered || !slices.Equal(after[:last], evs) {
			t.Fatalf("run %d: after recovery the dump has %d events (want %d) or changed what a reader had served", i, len(after), recovered)
		}
		t.Logf("run %d (%v): killed after %v, %d acks, a reader saw %d events, recovery kept %d", i, mode, wait, len(acks.acks), last, recovered)
		before = recovered
	}
	// A last, complete run continues at the next seq.
	r := run1(t, "load", dir, "--count", "10", "--batch", "10", "--streams", "5")
	if want := fmt.Sprintf("acked %d\n", before+10); r.code != 0 || r.stdout != want {
		t.Fatalf("load after the kills: exit %d, stdout %q, want %q (stderr %s)", r.code, r.stdout, want, r.stderr)
	}
	if evs := dumpAll(t, dir); uint64(len(evs)) != before+10 {
		t.Fatalf("the log holds %d events, want %d", len(evs), before+10)
	}
}

// exitedEarly reports whether a load process's stdout has ended (it
// exited).
func exitedEarly(a *ackReader) bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// servedSeq is the last seq a read-only open of the log in dir serves,
// beside a live writer.
func servedSeq(t *testing.T, dir string) uint64 {
	t.Helper()
	r, err := evlog.OpenReadOnly(dir, evlog.Options{})
	if err != nil {
		t.Fatalf("a read-only open beside the load: %v", err)
	}
	defer r.Close()
	return r.LastSeq()
}

// TestSecondWriter starts a load process, then a second writer on the same
// DIR: it must exit 1 within a second with "locked" on stderr, having
// written nothing (no ack, no file changed).
func TestSecondWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := filepath.Join(t.TempDir(), "log")
	cmd, stdout, _ := startLoad(t, dir, "--count", "100000000", "--size", "10", "--batch", "100", "--sync", "never")
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	go io.Copy(io.Discard, stdout)
	// Wait until the first writer holds the lock (its first segment exists).
	waitUntil(t, "the first load's segment", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
		return len(m) > 0
	})
	// The second writer must fail at once rather than wait for the lock.
	// No wall-clock bound proves that on a loaded machine; this does: the
	// first writer holds the lock for as long as it runs (10^8 events), so
	// a second writer that waited for it would never return while the
	// first is still running, which is checked after each attempt.
	for _, inProcess := range []bool{false, true} {
		var code int
		var out, errOut string
		if inProcess {
			r := run1(t, "load", dir, "--count", "5")
			code, out, errOut = r.code, r.stdout, r.stderr
		} else {
			second, stdout2, stderr2 := startLoad(t, dir, "--count", "5")
			b, _ := io.ReadAll(stdout2)
			err := second.Wait()
			code, out, errOut = second.ProcessState.ExitCode(), string(b), stderr2.String()
			_ = err
		}
		if code != 1 || !strings.Contains(errOut, "locked") || out != "" {
			t.Fatalf("second writer (in process: %v): exit %d, stdout %q, stderr %q; want exit 1, no output, \"locked\"", inProcess, code, out, errOut)
		}
		// The first writer holds the lock now, so it held it when the
		// second one failed. (Signal(0) cannot tell: it succeeds on a
		// process that has exited but is not yet reaped.)
		if !lockHeld(t, dir) {
			t.Fatal("the first writer no longer holds the lock (it ended before the second one failed): the test proved nothing")
		}
	}
}

// lockHeld reports whether a writer holds the lock of the log in dir: the
// flock of its LOCK file, which the kernel releases when the writer's
// process exits.
func lockHeld(t *testing.T, dir string) bool {
	t.Helper()
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	lk, err := fsys.Lock(evlog.LockFile)
	if errors.Is(err, vfs.ErrLocked) {
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	lk.Close()
	return false
}

// TestTailFollowsAnotherProcess runs tail -f while a load process appends
// (and rolls segments), and checks that it prints every event once, in
// order, and ends with status 0 when interrupted.
func TestTailFollowsAnotherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := filepath.Join(t.TempDir(), "log")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	const n = 300
	// The log's first event is there before tail starts, and the load
	// process starts once tail has printed it: tail has opened the log by
	// then, so it follows every other event, however late its goroutine
	// runs (one that first ran after the load would print only the last
	// 10).
	mustRun(t, "load", dir, "--count", "1", "--size", "40", "--streams", "4", "--segment-size", "4096")
	go func() {
		e := &env{stdin: strings.NewReader(""), stdout: out, stderr: out, now: time.Now, since: time.Since, poll: 5 * time.Millisecond}
		done <- runEnv(ctx, e, []string{"tail", dir, "-f", "--format", "jsonl"})
	}()
	waitUntil(t, "tail -f to print the first event", func() bool { return strings.Count(out.String(), "\n") >= 1 })
	cmd, stdout, stderr := startLoad(t, dir, "--count", strconv.Itoa(n-1), "--size", "40", "--batch", "3", "--streams", "4", "--segment-size", "4096")
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("load: %v: %s", err, stderr)
	}
	waitUntil(t, fmt.Sprintf("tail -f to print %d lines", n), func() bool { return strings.Count(out.String(), "\n") >= n })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("tail -f: %v", err)
	}
	lines := splitLines(out.String())
	if len(lines) != n {
		t.Fatalf("tail -f printed %d lines, want %d", len(lines), n)
	}
	for i, l := range lines {
		if want := fmt.Sprintf(`{"seq":%d,`, i+1); !strings.HasPrefix(l, want) {
			t.Fatalf("line %d = %s, want prefix %s", i+1, l, want)
		}
	}
}
