package evlogcli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
)

// unopenableLog returns a log that OpenReadOnly refuses (a checksum
// mismatch in the middle of its newest segment, before a record of it
// being made durable: corruption, not a torn tail).
func unopenableLog(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "log")
	mustRun(t, "load", dir, "--count", "120", "--size", "20", "--batch", "1", "--streams", "2", "--segment-size", "4096")
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(segs) < 2 {
		t.Fatalf("segments %v, %v; want several", segs, err)
	}
	newest := slices.Max(segs)
	b, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(newest, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if l, err := evlog.OpenReadOnly(dir, evlog.Options{}); !errors.Is(err, evlog.ErrCorrupt) {
		if err == nil {
			l.Close()
		}
		t.Fatalf("OpenReadOnly of the damaged log: %v, want ErrCorrupt", err)
	}
	return dir
}

// TestTailUnopenableLog: on a log that cannot be opened (corruption the
// open finds), tail does what dump does (docs/CLI.md, tail): it reads the
// segments frame by frame and prints the events of its range before the
// damage (for -n, the end of the log being unknown, the last N of them),
// then "corrupt FILE OFFSET REASON" on stderr naming the same file and
// offset as dump, and exits 1, with or without -f. It used to print the
// corrupt line only.
func TestTailUnopenableLog(t *testing.T) {
	t.Parallel()
	dir := unopenableLog(t)
	dump := run1(t, "dump", dir, "--format", "jsonl")
	want, ok := corruptAt(dump.err)
	prefix := dumpedSeqs(t, dump.stdout)
	k := uint64(len(prefix))
	if dump.code != 1 || !ok || k < 20 || !slices.Equal(prefix, seqs(1, k)) {
		t.Fatalf("dump: exit %d, %v, printed seqs %v; want exit 1, a *segment.CorruptError and a prefix of 20 events or more", dump.code, dump.err, prefix)
	}
	tests := []struct {
		args []string
		want []uint64
	}{
		{nil, seqs(k-9, k)}, // the last 10 readable
		{[]string{"-n", "3"}, seqs(k-2, k)},
		{[]string{"-n", "0"}, nil},
		{[]string{"-n", fmt.Sprint(k + 50)}, seqs(1, k)},
		{[]string{"--from", "5"}, seqs(5, k)},
		{[]string{"--from", fmt.Sprint(k)}, []uint64{k}},
		{[]string{"--from", fmt.Sprint(k + 1)}, nil},
		{[]string{"-f"}, seqs(k-9, k)},
		{[]string{"-f", "--from", fmt.Sprint(k - 1)}, seqs(k-1, k)},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.args), func(t *testing.T) {
			t.Parallel()
			args := append([]string{"tail", dir, "--format", "jsonl"}, tc.args...)
			r := run1(t, args...)
			if d := cmp.Diff(tc.want, dumpedSeqs(t, r.stdout)); d != "" {
				t.Errorf("tail %q printed seqs (-want +got):\n%s\nstderr: %s", tc.args, d, r.stderr)
			}
			ce, ok := corruptAt(r.err)
			if r.code != 1 || !ok || ce.File != want.File || ce.Offset != want.Offset ||
				!strings.HasPrefix(r.stderr, fmt.Sprintf("corrupt %s %d ", want.File, want.Offset)) {
				t.Errorf("tail %q: exit %d, error %v; want exit 1 and a *segment.CorruptError naming %s at %d, as dump's, got stderr:\n%s",
					tc.args, r.code, r.err, want.File, want.Offset, r.stderr)
			}
		})
	}
}

// seqs returns from..to.
func seqs(from, to uint64) []uint64 {
	var s []uint64
	for q := from; q <= to; q++ {
		s = append(s, q)
	}
	return s
}
