package evlogcli

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/segment"
)

// TestDumpLeavesOutForeignSegment: a directory holding a segment of
// another log does not open, and dump and tail then read it frame by
// frame (docs/CLI.md, dump). They decide as salvage does which segments
// are the log's (vetSegment): one proven another log's, or one nothing
// proves the log's whose seqs do not fit, is not printed; they print
// "corrupt FILE 0 REASON" naming it on stderr, read the log's own
// segments on, and exit 1. What they print is always the log's own events,
// in order. They used to print the
// foreign segment's events as the log's. A segment of the log itself with
// a damaged header is damage as before (the control rows).
func TestDumpLeavesOutForeignSegment(t *testing.T) {
	t.Parallel()
	fs := newForeignLogs(t)
	clean := run1(t, "dump", fs.logA, "--format", "jsonl")
	if clean.code != 0 {
		t.Fatalf("dump of log A: exit %d\n%s", clean.code, clean.stderr)
	}
	wantLines := slices.Collect(strings.Lines(clean.stdout))
	collides := placement{from: fs.logB, base: fs.mid, asBase: fs.mid, asGen: 1, foreign: true}
	beyond := placement{from: fs.logB, base: fs.beyond, asBase: fs.mid + 1, foreign: true}
	own := placement{from: fs.logA, base: fs.mid, asBase: fs.mid}
	for _, tc := range []struct {
		name    string
		place   placement
		corrupt func([]byte) // the header; nil: intact
	}{
		{name: "foreign/intact header/colliding", place: collides},
		{name: "foreign/intact header/beyond", place: beyond},
		{name: "foreign/log ID/colliding", place: collides, corrupt: flipHeader(20)},
		{name: "foreign/log ID/beyond", place: beyond, corrupt: flipHeader(20)},
		{name: "foreign/zeroed/colliding", place: collides, corrupt: zeroHeader},
		{name: "foreign/zeroed/beyond", place: beyond, corrupt: zeroHeader},
		{name: "own/zeroed", place: own, corrupt: zeroHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, name, _ := withSegment(t, fs.logA, tc.place, tc.corrupt)
			if l, err := evlog.OpenReadOnly(dir, evlog.Options{}); err == nil {
				l.Close()
				t.Fatalf("OpenReadOnly of log A holding %s: no error, want the directory not to open", name)
			}
			for _, args := range [][]string{
				{"dump", dir, "--format", "jsonl"},
				{"tail", dir, "--format", "jsonl", "-n", "1000"},
				{"tail", dir, "--format", "jsonl", "--from", "1"},
			} {
				r := run1(t, args...)
				checkNoPanic(t, args, r)
				got := slices.Collect(strings.Lines(r.stdout))
				for i, line := range got {
					if i >= len(wantLines) || line != wantLines[i] {
						t.Errorf("%q printed, as its line %d, %q: not log A's (%d lines printed)\nstderr: %s", args, i+1, line, len(got), r.stderr)
						break
					}
				}
				wantN := len(wantLines) // the file left out, the log's own are read on
				if !tc.place.foreign {
					wantN = int(tc.place.asBase) - 1 // the events before the damaged header
				}
				if len(got) != wantN {
					t.Errorf("%q printed %d events, want %d\nstderr: %s", args, len(got), wantN, r.stderr)
				}
				named := false
				for _, ce := range corruptions(r.err) {
					named = named || ce.File == name && ce.Offset == 0
				}
				if r.code != 1 || !errors.Is(r.err, evlog.ErrCorrupt) || !named ||
					!strings.Contains(r.stderr, fmt.Sprintf("corrupt %s 0 ", name)) {
					t.Errorf("%q: exit %d, error %v; want exit 1 and a *segment.CorruptError naming %s at 0, stderr \"corrupt %s 0 …\", got:\n%s",
						args, r.code, r.err, name, name, r.stderr)
				}
			}
		})
	}
}

// corruptions returns every *segment.CorruptError in err's tree.
func corruptions(err error) []*segment.CorruptError {
	var out []*segment.CorruptError
	var walk func(error)
	walk = func(err error) {
		if ce, ok := err.(*segment.CorruptError); ok {
			out = append(out, ce)
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			if e := u.Unwrap(); e != nil {
				walk(e)
			}
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}
