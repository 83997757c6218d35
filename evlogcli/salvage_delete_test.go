package evlogcli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/segment"
)

// TestSalvageDamagedKeepsDeletions: salvage of a damaged log (read frame
// by frame, not through the log) copies what reads as visible, as it does
// for a log that reads cleanly: the events of a stream deleted (soft,
// truncated, tombstoned) before the damage are not copied back into the
// new log, where no marker would make them read as gone.
func TestSalvageDamagedKeepsDeletions(t *testing.T) {
	t.Parallel()
	dir := damagedLogWithDeletions(t, segment.HeaderSize+200) // the pad's payload
	for _, args := range [][]string{nil, {"--skip-damaged"}} {
		out := filepath.Join(t.TempDir(), "salvaged")
		r := run1(t, append([]string{"salvage", dir, out}, args...)...)
		if r.code != 1 || !strings.Contains(r.stdout, "gap ") {
			t.Fatalf("salvage %q: exit %d, want 1 with a gap:\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		d := run1(t, "dump", out, "--format", "jsonl")
		if d.code != 0 {
			t.Fatalf("dump: %s", d.stderr)
		}
		for _, gone := range damagedGone {
			if strings.Contains(d.stdout, gone) {
				t.Errorf("salvage %q copied %s, an event deleted in the damaged log, into the new log (where nothing deletes it)", args, gone)
			}
		}
		for _, kept := range damagedVisible {
			if !strings.Contains(d.stdout, kept) {
				t.Errorf("salvage %q did not copy %s", args, kept)
			}
		}
	}
}

// Events deleted (soft, truncated, tombstoned) and visible in the
// damaged log damagedLogWithDeletions makes, as dump --format jsonl of the
// log would print them.
var (
	damagedGone    = []string{"<del-1/1>", "<del-1/4>", "<trunc-1/1>", "<trunc-1/2>", "<tomb-1/1>", "<tomb-1/4>"}
	damagedVisible = []string{"<trunc-1/3>", "<trunc-1/4>", "<keep-1/1>", "<keep-1/4>"}
)

// damagedLogWithDeletions returns a log of three segments: streams del-1,
// trunc-1 (before 3) and tomb-1 deleted, keep-1 visible (4 events each),
// the markers, then a big event filling the second (sealed) segment,
// whose byte at off (from its end when negative) is flipped: a payload
// byte the log finds when it reads it, or a trailer byte that keeps it
// from opening at all.
func damagedLogWithDeletions(t *testing.T, off int) string {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "log")
	l, err := evlog.Open(dir, evlog.Options{SegmentSize: evlog.MinSegmentSize, Sync: evlog.SyncNever, Clock: func() time.Time { return testEpoch }})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"del-1", "trunc-1", "tomb-1", "keep-1"} {
		for v := range 4 {
			if _, err := l.Append(ctx, s, evlog.ExpectAny, evlog.Envelope{Type: "t", Data: mpStr(fmt.Sprintf("<%s/%d>", s, v+1))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, _, err := l.DeleteStream(ctx, "del-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TruncateStream(ctx, "trunc-1", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TombstoneStream(ctx, "tomb-1"); err != nil {
		t.Fatal(err)
	}
	// Roll past the markers, then one more committed event to damage in
	// a sealed segment.
	if _, err := l.Append(ctx, "pad-1", evlog.ExpectAny, evlog.Envelope{Type: "t", Data: make([]byte, evlog.MinSegmentSize)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "pad-1", evlog.ExpectAny, evlog.Envelope{Type: "t", Data: []byte("\xa4last")}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Damage the sealed segment the big pad event starts.
	segs, err := filepath.Glob(filepath.Join(dir, "*"+segment.Ext))
	if err != nil || len(segs) != 3 {
		t.Fatalf("segments %q, %v; want 3", segs, err)
	}
	path := segs[1]
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDumpDamagedKeepsDeletions: dump of a damaged log (read frame by
// frame, not through the log) prints the valid prefix without the events
// that its readable deletion markers delete, truncate or tombstone, nor
// the placeholders compact leaves of them, as dump of a clean log does.
func TestDumpDamagedKeepsDeletions(t *testing.T) {
	t.Parallel()
	dir := damagedLogWithDeletions(t, -3) // the trailer: the log does not open
	if l, err := evlog.OpenReadOnly(dir, evlog.Options{}); err == nil {
		l.Close()
		t.Fatal("the damaged log opens: dump would not read it frame by frame")
	}
	d := run1(t, "dump", dir, "--format", "jsonl")
	if d.code != 1 || !strings.Contains(d.stderr, "corrupt ") {
		t.Fatalf("dump: exit %d, want 1 with a corruption:\n%s%s", d.code, d.stdout, d.stderr)
	}
	for _, gone := range damagedGone {
		if strings.Contains(d.stdout, gone) {
			t.Errorf("dump printed %s, an event deleted in the damaged log", gone)
		}
	}
	for _, kept := range damagedVisible {
		if !strings.Contains(d.stdout, kept) {
			t.Errorf("dump did not print %s", kept)
		}
	}
	if !strings.Contains(d.stdout, evlog.DeletionsStream) {
		t.Errorf("dump did not print the deletion markers:\n%s", d.stdout)
	}
}

// mpStr is s (shorter than 32 bytes) as a msgpack string.
func mpStr(s string) []byte { return append([]byte{0xa0 | byte(len(s))}, s...) }
