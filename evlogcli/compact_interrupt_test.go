package evlogcli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// cancelOnWrite cancels a context at the first write to it.
type cancelOnWrite struct {
	bytes.Buffer
	cancel context.CancelFunc
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	w.cancel()
	return w.Buffer.Write(p)
}

// TestCompactInterrupted: compact prints each group as it commits, and
// when interrupted says how many it had committed (it used to print
// nothing but the error, leaving the operator to guess).
func TestCompactInterrupted(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "load", dir, "--count", "300", "--size", "50", "--batch", "10", "--sync", "always", "--streams", "7", "--segment-size", "4096")
	before := mustRun(t, "dump", dir, "--format", "jsonl").stdout
	plan := mustRun(t, "compact", dir, "--dry-run", "--target-size", "16KiB").stdout
	if n := strings.Count(plan, "would merge "); n != 2 {
		t.Fatalf("plan has %d groups, want 2:\n%s", n, plan)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &cancelOnWrite{cancel: cancel} // interrupted as the first group's line is printed
	var errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: out, stderr: &errb, now: func() time.Time { return testEpoch },
		since: func(time.Time) time.Duration { return 0 }}
	err := runEnv(ctx, e, []string{"compact", dir, "--target-size", "16KiB"})
	if exitCode(err) != 1 || !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted compact: exit %d, %v", exitCode(err), err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "merged ") || !strings.HasSuffix(lines[0], " into 00000000000000000001-00000001.seg") {
		t.Fatalf("stdout %q: want exactly the first group's line", out.String())
	}
	if !strings.Contains(errb.String(), "stopped after committing 1 of 2 groups (printed above;") {
		t.Fatalf("stderr %q: want how many groups were committed", errb.String())
	}
	if after := mustRun(t, "dump", dir, "--format", "jsonl").stdout; after != before {
		t.Fatal("the interrupted compaction changed what dump prints")
	}
	if got := mustRun(t, "inspect", dir).stdout; !strings.Contains(got, "00000000000000000001-00000001.seg") || !strings.Contains(got, "00000000000000000121-00000000.seg") {
		t.Fatalf("inspect after the interruption: want the first group merged and the second not:\n%s", got)
	}
	// Running it again finishes the job (planned afresh).
	if got := mustRun(t, "compact", dir, "--target-size", "16KiB").stdout; !strings.HasPrefix(got, "merged ") {
		t.Fatalf("second run:\n%s", got)
	}
	if after := mustRun(t, "dump", dir, "--format", "jsonl").stdout; after != before {
		t.Fatal("compaction changed what dump prints")
	}
}
