package evlogcli

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTailNamesBadMarker: a deletion marker that checksums but does not
// decode fails every read of the log; tail reports it as dump does (docs/
// CLI.md, tail): it prints the events of its range before the marker
// (what the marker deleted cannot be known, so they may be among them),
// then "corrupt FILE OFFSET REASON" on stderr naming the segment and the
// marker frame's offset, and exits 1, with or without -f. It never prints
// the marker nor the events after it.
func TestTailNamesBadMarker(t *testing.T) {
	t.Parallel()
	dir, file, off := logWithBadMarker(t)
	// seqs: 1, 2 del-1; 3, 4 keep-1; 5 the marker; 6 keep-1.
	tests := []struct {
		args []string
		want []uint64
	}{
		{nil, []uint64{1, 2, 3, 4}}, // the last 10: all
		{[]string{"-n", "4"}, []uint64{3, 4}},
		{[]string{"-n", "2"}, nil},
		{[]string{"--from", "2"}, []uint64{2, 3, 4}},
		{[]string{"--from", "6"}, nil},
		{[]string{"-f"}, []uint64{1, 2, 3, 4}},
		{[]string{"-f", "--from", "4"}, []uint64{4}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.args), func(t *testing.T) {
			t.Parallel()
			args := append([]string{"tail", dir, "--format", "jsonl"}, tc.args...)
			r := run1(t, args...)
			checkNoPanic(t, args, r)
			if d := cmp.Diff(tc.want, dumpedSeqs(t, r.stdout)); d != "" {
				t.Errorf("tail %q printed seqs (-want +got):\n%s\nstderr: %s", tc.args, d, r.stderr)
			}
			ce, ok := corruptAt(r.err)
			if r.code != 1 || !ok || ce.File != file || ce.Offset != off ||
				!strings.HasPrefix(r.stderr, fmt.Sprintf("corrupt %s %d deletion marker at seq 5", file, off)) {
				t.Errorf("tail %q: exit %d, error %v; want exit 1 and a *segment.CorruptError naming %s at %d, stderr \"corrupt %s %d deletion marker at seq 5 …\", got:\n%s",
					tc.args, r.code, r.err, file, off, file, off, r.stderr)
			}
		})
	}
}
