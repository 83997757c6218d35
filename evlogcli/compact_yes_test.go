package evlogcli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ttyInput is standard input that says it is a terminal.
type ttyInput struct{ strings.Reader }

func (*ttyInput) terminal() bool { return true }

// On a terminal, compact changes nothing without --yes (exit 2, a hint);
// --dry-run and --yes proceed, and so does a script (stdin not a terminal).
func TestCompactAsksForYesOnATerminal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	mustRun(t, "load", dir, "--count", "300", "--size", "30", "--batch", "7", "--segment-size", "4096")
	before, err := hashDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	runTTY := func(args ...string) result {
		var out, errb bytes.Buffer
		e := &env{stdin: &ttyInput{}, stdout: &out, stderr: &errb, now: func() time.Time { return testEpoch }}
		err := runEnv(context.Background(), e, args)
		return result{stdout: out.String(), stderr: errb.String(), err: err, code: exitCode(err)}
	}
	r := runTTY("compact", dir)
	if r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("compact on a terminal without --yes: exit %d, stderr %q", r.code, r.stderr)
	}
	if after, _ := hashDir(dir); after != before {
		t.Fatal("compact without --yes changed the log")
	}
	if r := runTTY("compact", dir, "--dry-run"); r.code != 0 {
		t.Fatalf("compact --dry-run on a terminal: exit %d: %s", r.code, r.stderr)
	}
	if r := runTTY("compact", dir, "--yes"); r.code != 0 {
		t.Fatalf("compact --yes on a terminal: exit %d: %s", r.code, r.stderr)
	}
	if after, _ := hashDir(dir); after == before {
		t.Fatal("compact --yes changed nothing")
	}
	mustRun(t, "compact", dir) // not a terminal: no question
}
