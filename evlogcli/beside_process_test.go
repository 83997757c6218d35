//go:build unix

package evlogcli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// processCommands are the read-only commands run beside the writer process: every
// one of stateCommands but those of an application's fold, and backup and salvage, which only read their
// source DIR (each into a new destination under dest).
func processCommands(dir, dest string, round int) [][]string {
	var cmds [][]string
	for _, args := range stateCommands(dir) {
		if !slices.Contains(args, "--fold") { // a process has no application folds
			cmds = append(cmds, args)
		}
	}
	cmds = append(cmds,
		[]string{"verify", dir, "--replay"},
		[]string{"state", dir, "--at", "-1h"},
		[]string{"backup", dir, filepath.Join(dest, fmt.Sprintf("backup-%d", round))},
		[]string{"salvage", dir, filepath.Join(dest, fmt.Sprintf("salvage-%d", round))},
	)
	return cmds
}

// readerRun is the outcome of one reader process.
type readerRun struct {
	args           []string
	stdout, stderr string
	err            error
}

// runReader runs evlogctl args in a process of its own; ctx's deadline
// only turns a hang into a failure.
func runReader(ctx context.Context, args []string) readerRun {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), beMainEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return readerRun{args: args, stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// problem returns what is wrong with a reader's run beside a writer
// (status 0, and nothing naming damage or a panic, is right), or "".
func (r readerRun) problem() string {
	out := strings.ToLower(r.stdout + r.stderr)
	var bad []string
	if r.err != nil {
		bad = append(bad, r.err.Error())
	}
	for _, word := range []string{"corrupt", "damage", "panic", "internal error", "missing"} {
		if strings.Contains(out, word) {
			bad = append(bad, fmt.Sprintf("output contains %q", word))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return fmt.Sprintf("evlogctl %s: %s\nstderr:\n%s\nstdout (its first lines):\n%s",
		strings.Join(r.args, " "), strings.Join(bad, "; "), r.stderr, headLines(r.stdout, 20))
}

// runReaders runs cmds in two processes at a time, each at least once,
// and while more() reports true goes round them again; it returns the
// runs in order.
func runReaders(ctx context.Context, cmds [][]string, more func() bool) []readerRun {
	var (
		mu   sync.Mutex
		runs []readerRun
		next int
		wg   sync.WaitGroup
	)
	take := func() ([]string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil || next >= len(cmds) && !more() {
			return nil, false
		}
		args := cmds[next%len(cmds)]
		next++
		return args, true
	}
	for range 2 {
		wg.Go(func() {
			for {
				args, ok := take()
				if !ok {
					return
				}
				r := runReader(ctx, args)
				mu.Lock()
				runs = append(runs, r)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return runs
}

// TestReadOnlyCommandsBesideWriterProcess: the read-only commands, each in
// a process of its own, beside a writer in another process that rolls
// tiny segments, saves and prunes snapshots, acknowledges a subscription,
// deletes streams, applies retention and compacts. For each of a bounded
// number of steps:
//   - while the writer runs the step, the readers go round every command
//     (at least once, and again until the writer pauses): each must exit
//     0 and print nothing naming damage;
//   - while the writer waits at its barrier (a line on its stdin), every
//     command runs again, and the directory — every file's name, bytes,
//     mode and modification time — must be the same after them as
//     before: readers never create, change or remove anything, the
//     writer's lock file and its temporaries included.
//
// The outcome does not depend on how the processes interleave; the
// deadline only turns a hang into a failure.
func TestReadOnlyCommandsBesideWriterProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const steps = 4
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "log")
	dest := filepath.Join(tmp, "dest") // backups and salvages: not under dir
	for _, d := range []string{dir, dest} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	writer := exec.CommandContext(ctx, os.Args[0], strconv.Itoa(steps))
	writer.Env = append(os.Environ(), besideWriterEnv+"="+dir)
	barrier, err := writer.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	wout, err := writer.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var werr syncBuffer
	writer.Stderr = &werr
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	paused := make(chan string)
	go func() {
		defer close(paused)
		sc := bufio.NewScanner(wout)
		for sc.Scan() {
			paused <- sc.Text()
		}
	}()
	fail := func(format string, args ...any) {
		t.Helper()
		barrier.Close()
		cancel()
		writer.Wait()
		t.Fatalf(format+"\nwriter's stderr: %s", append(args, werr.String())...)
	}

	round := 0
	problems := 0
	check := func(runs []readerRun) {
		t.Helper()
		for _, r := range runs {
			if p := r.problem(); p != "" {
				problems++
				if problems <= 10 {
					t.Error(p)
				}
			}
		}
	}
	for step := range steps {
		// The writer's step, with readers beside it until it pauses.
		if _, err := io.WriteString(barrier, "go\n"); err != nil {
			fail("step %d: releasing the writer: %v", step, err)
		}
		var (
			mu         sync.Mutex
			line       string
			ok         bool
			pausedDone = make(chan struct{})
		)
		go func() {
			defer close(pausedDone)
			select {
			case l, more := <-paused:
				mu.Lock()
				line, ok = l, more
				mu.Unlock()
			case <-ctx.Done():
			}
		}()
		isRunning := func() bool {
			select {
			case <-pausedDone:
				return false
			default:
				return true
			}
		}
		round++
		runs := runReaders(ctx, processCommands(dir, dest, round), isRunning)
		<-pausedDone
		mu.Lock()
		pl, pok := line, ok
		mu.Unlock()
		check(runs)
		if !pok || !strings.HasPrefix(pl, fmt.Sprintf("paused %d ", step)) {
			fail("step %d: the writer did not pause (%q)", step, pl)
		}
		t.Logf("step %d: %s; %d reader runs beside it", step, pl, len(runs))

		// The writer paused: the readers alone must change nothing.
		backdate(t, dir)
		before := fileHashes(t, dir)
		round++
		check(runReaders(ctx, processCommands(dir, dest, round), func() bool { return false }))
		compareHashes(t, fmt.Sprintf("step %d", step), before, fileHashes(t, dir))
	}
	barrier.Close()
	if _, more := <-paused; more {
		t.Error("the writer printed more than its steps")
	}
	if err := writer.Wait(); err != nil {
		t.Fatalf("the writer failed: %v: %s", err, werr.String())
	}
	// And the log the writer left is sound.
	backdate(t, dir)
	before := fileHashes(t, dir)
	round++
	check(runReaders(ctx, processCommands(dir, dest, round), func() bool { return false }))
	compareHashes(t, "after the writer", before, fileHashes(t, dir))
	if problems > 10 {
		t.Errorf("%d reader runs went wrong in all (the first 10 above)", problems)
	}
}

// compareHashes reports every file that differs between two fileHashes.
func compareHashes(t *testing.T, when string, before, after map[string]string) {
	t.Helper()
	keys := slices.Sorted(maps.Keys(before))
	for k := range after {
		if _, ok := before[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if before[k] != after[k] {
			t.Errorf("%s: the readers changed %s: before %q, after %q", when, k, before[k], after[k])
		}
	}
}
