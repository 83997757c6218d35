package evlogcli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/segment"
)

// dumpedSeqs returns the seqs of dump's jsonl output.
func dumpedSeqs(t *testing.T, stdout string) []uint64 {
	t.Helper()
	var seqs []uint64
	for line := range strings.Lines(stdout) {
		var ev struct{ Seq uint64 }
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("dump printed %q: %v", line, err)
		}
		seqs = append(seqs, ev.Seq)
	}
	return seqs
}

// TestDumpNamesBadMarker: a deletion marker that checksums but does not
// decode is damage, and dump reports it as it reports any damage (docs/
// CLI.md, dump): it prints the events before it that the filters select
// (what the marker deleted cannot be known, so they may be among them),
// then "corrupt FILE OFFSET REASON" naming the segment and the marker
// frame's offset, and exits 1. It never prints the marker, nor the events
// after it (dump never skips damage).
func TestDumpNamesBadMarker(t *testing.T) {
	t.Parallel()
	dir, file, off := logWithBadMarker(t)
	// seqs: 1, 2 del-1; 3, 4 keep-1; 5 the marker; 6 keep-1.
	tests := []struct {
		args []string
		want []uint64
	}{
		{nil, []uint64{1, 2, 3, 4}},
		{[]string{"--stream", "keep-1"}, []uint64{3, 4}},
		{[]string{"--stream", "del-1"}, []uint64{1, 2}},
		{[]string{"--to", "2"}, []uint64{1, 2}},
		{[]string{"--from", "3", "--to", "4"}, []uint64{3, 4}},
		{[]string{"--from", "6"}, nil},
		{[]string{"--since", "2026-11-25T15:00:00Z", "--until", "2026-11-25T16:00:00Z"}, []uint64{1, 2, 3, 4}},
		{[]string{"--type", "$deleted"}, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.args), func(t *testing.T) {
			t.Parallel()
			args := append([]string{"dump", dir, "--format", "jsonl"}, tc.args...)
			r := run1(t, args...)
			checkNoPanic(t, args, r)
			if d := cmp.Diff(tc.want, dumpedSeqs(t, r.stdout)); d != "" {
				t.Errorf("dump %q printed seqs (-want +got):\n%s\nstderr: %s", tc.args, d, r.stderr)
			}
			ce, ok := corruptAt(r.err)
			if r.code != 1 || !ok || ce.File != file || ce.Offset != off ||
				!strings.HasPrefix(r.stderr, fmt.Sprintf("corrupt %s %d deletion marker at seq 5", file, off)) {
				t.Errorf("dump %q: exit %d, error %v; want exit 1 and a *segment.CorruptError naming %s at %d, stderr \"corrupt %s %d deletion marker at seq 5 …\", got:\n%s",
					tc.args, r.code, r.err, file, off, file, off, r.stderr)
			}
		})
	}
}

// TestDumpRawStopsAtBadMarker: dump's frame-by-frame fallback (a log that
// cannot be opened, here for a stand-in reason elsewhere) stops at a
// deletion marker that does not decode, naming its file and offset,
// instead of printing it as an event and folding nothing from it.
func TestDumpRawStopsAtBadMarker(t *testing.T) {
	t.Parallel()
	dir, file, off := logWithBadMarker(t)
	openErr := &segment.CorruptError{File: "99999999999999999999-00000000.seg", Offset: 0, Reason: "stand-in for damage after the marker"}
	var out bytes.Buffer
	p := newEventPrinter(&out, "jsonl")
	err := dumpRaw(t.Context(), dir, filter{to: 1<<64 - 1}, p, openErr)
	if ferr := p.flush(); ferr != nil {
		t.Fatal(ferr)
	}
	if d := cmp.Diff([]uint64{1, 2, 3, 4}, dumpedSeqs(t, out.String())); d != "" {
		t.Errorf("printed seqs (-want +got):\n%s", d)
	}
	if ce, ok := corruptAt(err); !ok || ce.File != file || ce.Offset != off {
		t.Errorf("dumpRaw: %v; want a *segment.CorruptError naming %s at %d", err, file, off)
	}
}

// corruptAt returns the *segment.CorruptError in err, if err matches
// evlog.ErrCorrupt.
func corruptAt(err error) (*segment.CorruptError, bool) {
	ce, ok := errors.AsType[*segment.CorruptError](err)
	return ce, ok && errors.Is(err, evlog.ErrCorrupt)
}
