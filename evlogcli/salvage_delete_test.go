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
	// Damage the big pad event's payload (the sealed segment it starts).
	segs, err := filepath.Glob(filepath.Join(dir, "*"+segment.Ext))
	if err != nil || len(segs) != 3 {
		t.Fatalf("segments %q, %v; want 3", segs, err)
	}
	path := segs[1]
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[segment.HeaderSize+200] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
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
		for _, gone := range []string{"<del-1/1>", "<del-1/4>", "<trunc-1/1>", "<trunc-1/2>", "<tomb-1/1>", "<tomb-1/4>"} {
			if strings.Contains(d.stdout, gone) {
				t.Errorf("salvage %q copied %s, an event deleted in the damaged log, into the new log (where nothing deletes it)", args, gone)
			}
		}
		for _, kept := range []string{"<trunc-1/3>", "<trunc-1/4>", "<keep-1/1>", "<keep-1/4>"} {
			if !strings.Contains(d.stdout, kept) {
				t.Errorf("salvage %q did not copy %s", args, kept)
			}
		}
	}
}

// mpStr is s (shorter than 32 bytes) as a msgpack string.
func mpStr(s string) []byte { return append([]byte{0xa0 | byte(len(s))}, s...) }
