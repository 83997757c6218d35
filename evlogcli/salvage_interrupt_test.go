package evlogcli

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/copyhook"
)

// TestSalvageInterruptedThenRunAgain: a salvage interrupted after it
// copied some events (here cancelled, as Ctrl-C or SIGTERM does, after
// its first batch) left NEWDIR holding a partial log that nothing told
// from a complete one: every command opened it and served it as the
// salvaged log, and the salvage run again refused it ("already holds N
// events"). NEWDIR must be refused as an interrupted salvage until the
// salvage is run again, and running it again must complete it.
func TestSalvageInterruptedThenRunAgain(t *testing.T) {
	root := t.TempDir()
	dir, newdir := filepath.Join(root, "log"), filepath.Join(root, "new")
	mustRun(t, "load", dir, "--count", "3000", "--batch", "100", "--size", "40")
	want := mustRun(t, "dump", dir, "--format", "jsonl").stdout

	orig := copyhook.AppendBatch
	t.Cleanup(func() { copyhook.AppendBatch = orig })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	copyhook.AppendBatch = func(ctx context.Context, l any, batch any) (any, error) {
		res, err := orig(ctx, l, batch)
		cancel() // interrupted once the first batch is in
		return res, err
	}
	r := runIn(t, ctx, testEpoch, "", "salvage", dir, newdir)
	copyhook.AppendBatch = orig
	if r.code == 0 {
		t.Fatalf("the interrupted salvage succeeded: %s", r.stdout)
	}

	if l, err := evlog.OpenReadOnly(newdir, evlog.Options{}); err == nil {
		n := l.LastSeq()
		l.Close()
		t.Errorf("NEWDIR of an interrupted salvage opens as a log of %d events (of %d), want it refused", n, strings.Count(want, "\n"))
	} else if !errors.Is(err, evlog.ErrSalvageIncomplete) {
		t.Errorf("opening NEWDIR of an interrupted salvage: %v, want ErrSalvageIncomplete", err)
	}
	if d := run1(t, "dump", newdir, "--format", "jsonl"); d.code == 0 {
		t.Errorf("dump of NEWDIR of an interrupted salvage succeeded (%d events)", strings.Count(d.stdout, "\n"))
	}

	again := run1(t, "salvage", dir, newdir)
	if again.code != 0 {
		t.Fatalf("the salvage run again: status %d: %s", again.code, again.stderr)
	}
	if got := mustRun(t, "dump", newdir, "--format", "jsonl").stdout; got != want {
		t.Errorf("after the salvage run again, NEWDIR holds %d events, want the %d of DIR", strings.Count(got, "\n"), strings.Count(want, "\n"))
	}
}
